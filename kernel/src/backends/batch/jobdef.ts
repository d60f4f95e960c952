/**
 * One job definition per (image, command, role, platform), registered once
 * and reused: its name is a hash of its content, so an existing ACTIVE
 * definition of that name is by construction the one we want, and a changed
 * image or nbscale version simply gets a new name.
 */
import { DescribeJobDefinitionsCommand, RegisterJobDefinitionCommand, type BatchClient, type RegisterJobDefinitionCommandInput } from "@aws-sdk/client-batch";
import { containerCommand, sha256Hex } from "./bootstrap";

export interface JobDefinitionSpec {
  image: string;
  nbscaleVersion: string;
  jobRoleArn?: string;
}

/** Defaults a job gets when the step asks for nothing (Batch needs some). */
export const DEFAULT_VCPU = 1;
export const DEFAULT_MEMORY_MIB = 2048;

/** The definition's content, without its name. */
function content(spec: JobDefinitionSpec): Omit<RegisterJobDefinitionCommandInput, "jobDefinitionName"> {
  return {
    type: "container",
    // EC2 (on-demand or spot compute environments): GPUs need it, and it takes any MEMORY/VCPU pair.
    platformCapabilities: ["EC2"],
    containerProperties: {
      image: spec.image,
      command: containerCommand(spec.nbscaleVersion),
      resourceRequirements: [
        { type: "VCPU", value: String(DEFAULT_VCPU) },
        { type: "MEMORY", value: String(DEFAULT_MEMORY_MIB) },
      ],
      ...(spec.jobRoleArn ? { jobRoleArn: spec.jobRoleArn } : {}),
    },
    tags: { "nbscale:version": spec.nbscaleVersion },
  };
}

export function jobDefinitionInput(spec: JobDefinitionSpec): RegisterJobDefinitionCommandInput {
  const body = content(spec);
  // Key order is fixed by `content`, so the JSON text is a stable description.
  const name = `nbscale-${sha256Hex(JSON.stringify(body)).slice(0, 20)}`;
  return { jobDefinitionName: name, ...body };
}

/** Registered definitions of this kernel session, by name: `name:revision`. */
export class JobDefinitions {
  private readonly known = new Map<string, Promise<string>>();

  constructor(private readonly client: BatchClient) {}

  /** `name:revision` of the definition for `spec`, registering it the first time. */
  ensure(spec: JobDefinitionSpec): Promise<string> {
    const input = jobDefinitionInput(spec);
    const name = input.jobDefinitionName!;
    let found = this.known.get(name);
    if (!found) {
      found = this.lookupOrRegister(input);
      // A failure (e.g. no permission) must not stick: the next step asks again.
      found.catch(() => this.known.delete(name));
      this.known.set(name, found);
    }
    return found;
  }

  private async lookupOrRegister(input: RegisterJobDefinitionCommandInput): Promise<string> {
    const name = input.jobDefinitionName!;
    const existing = await this.client.send(new DescribeJobDefinitionsCommand({ jobDefinitionName: name, status: "ACTIVE" }));
    const revisions = (existing.jobDefinitions ?? []).map((d) => d.revision ?? 0);
    if (revisions.length > 0) return `${name}:${Math.max(...revisions)}`;
    const made = await this.client.send(new RegisterJobDefinitionCommand(input));
    return `${made.jobDefinitionName ?? name}:${made.revision}`;
  }
}

/**
 * Can the queue ever run this job? A job asking for more than any of its
 * compute environments can provide stays RUNNABLE forever, silently; this
 * says so before submitting, when DescribeComputeEnvironments tells enough
 * (maxvCpus, explicit instance types). When it can't tell (unmanaged
 * environments, instance families like "optimal" or "m5"), it says nothing
 * and the RUNNABLE hint covers the rest. A queue of Fargate environments is
 * refused outright: the job definitions are for the EC2 platform.
 */
import { DescribeComputeEnvironmentsCommand, DescribeJobQueuesCommand, type BatchClient, type ComputeEnvironmentDetail } from "@aws-sdk/client-batch";
import { formatSize } from "../../magics";
import { BatchConfigError } from "./settings";

export interface Ask {
  memory?: number;
  cpu?: number;
  gpu?: number;
}

/** What one compute environment can give one job at most; undefined = can't tell. */
export interface EnvLimit {
  name: string;
  vcpus?: number;
  memory?: number;
  gpus?: number;
}

const GiB = 2 ** 30;
/** vCPUs by instance size (the same across current families). */
const SIZE_VCPUS: Record<string, number> = {
  medium: 1,
  large: 2,
  xlarge: 4,
  "2xlarge": 8,
  "3xlarge": 12,
  "4xlarge": 16,
  "6xlarge": 24,
  "8xlarge": 32,
  "9xlarge": 36,
  "12xlarge": 48,
  "16xlarge": 64,
  "18xlarge": 72,
  "24xlarge": 96,
  "32xlarge": 128,
  "48xlarge": 192,
};
/** GiB per vCPU of general families (c: compute, m: general, r: memory, x: extra memory). */
const FAMILY_GIB_PER_VCPU: Record<string, number> = { c: 2, m: 4, r: 8, x: 16 };

/** Limits of an exact instance type like `m5.4xlarge`, for the families we know; null otherwise. */
export function instanceLimit(type: string): { vcpus: number; memory: number; gpus: number } | null {
  const m = /^([a-z]+)(\d+)([a-z-]*)\.([0-9]*x?large|medium)$/.exec(type);
  if (!m) return null;
  const vcpus = SIZE_VCPUS[m[4]];
  const perVcpu = FAMILY_GIB_PER_VCPU[m[1]];
  if (vcpus === undefined || perVcpu === undefined) return null;
  return { vcpus, memory: vcpus * perVcpu * GiB, gpus: 0 };
}

function isFargate(ce: ComputeEnvironmentDetail): boolean {
  return ce.computeResources?.type === "FARGATE" || ce.computeResources?.type === "FARGATE_SPOT";
}

export function environmentLimit(ce: ComputeEnvironmentDetail): EnvLimit {
  const name = ce.computeEnvironmentName ?? ce.computeEnvironmentArn ?? "?";
  const r = ce.computeResources;
  if (ce.type !== "MANAGED" || !r) return { name };
  const limit: EnvLimit = { name, vcpus: r.maxvCpus };
  const types = r.instanceTypes ?? [];
  const known = types.map(instanceLimit);
  if (types.length > 0 && known.every((k) => k !== null)) {
    const ks = known as Array<{ vcpus: number; memory: number; gpus: number }>;
    limit.vcpus = Math.min(limit.vcpus ?? Infinity, Math.max(...ks.map((k) => k.vcpus)));
    limit.memory = Math.max(...ks.map((k) => k.memory));
    limit.gpus = Math.max(...ks.map((k) => k.gpus));
  }
  return limit;
}

/** Why no environment fits `ask`, or null when one may. */
export function unfit(ask: Ask, limits: EnvLimit[]): string | null {
  if (limits.length === 0) return null;
  const fits = (l: EnvLimit) =>
    (ask.cpu === undefined || l.vcpus === undefined || ask.cpu <= l.vcpus) &&
    (ask.memory === undefined || l.memory === undefined || ask.memory <= l.memory) &&
    (ask.gpu === undefined || ask.gpu === 0 || l.gpus === undefined || ask.gpu <= l.gpus);
  if (limits.some(fits)) return null;
  const problems: string[] = [];
  const max = (k: "vcpus" | "memory" | "gpus") => Math.max(...limits.map((l) => l[k] ?? 0));
  if (ask.cpu !== undefined && limits.every((l) => l.vcpus !== undefined && ask.cpu! > l.vcpus)) {
    problems.push(`--cpu ${ask.cpu} but at most ${max("vcpus")} vCPUs`);
  }
  if (ask.memory !== undefined && limits.every((l) => l.memory !== undefined && ask.memory! > l.memory)) {
    problems.push(`--memory ${formatSize(ask.memory)} but at most ${formatSize(max("memory"))}`);
  }
  if (ask.gpu && limits.every((l) => l.gpus !== undefined && ask.gpu! > l.gpus)) {
    problems.push(`--gpu ${ask.gpu} but at most ${max("gpus")} GPUs`);
  }
  if (problems.length === 0) problems.push("resources no single compute environment has together");
  const each = limits.map((l) => `${l.name}: ${l.vcpus ?? "?"} vCPU, ${l.memory !== undefined ? formatSize(l.memory) : "? memory"}, ${l.gpus ?? "?"} GPU`);
  return `asks for ${problems.join("; ")} (${each.join("; ")})`;
}

/**
 * Checks that the queue exists, is usable, and that one of its compute
 * environments can run `ask`; throws a BatchConfigError otherwise.
 */
export async function checkQueue(client: BatchClient, queue: string, queueFrom: string, ask: Ask): Promise<void> {
  const q = (await client.send(new DescribeJobQueuesCommand({ jobQueues: [queue] }))).jobQueues?.[0];
  const region = await client.config.region();
  if (!q) {
    throw new BatchConfigError(
      "NBSCALE_BATCH_QUEUE",
      `job queue \`${queue}\` (${queueFrom}) does not exist in ${region}; \`aws batch describe-job-queues\` lists yours — set NBSCALE_BATCH_QUEUE or --queue to one of them`,
    );
  }
  if (q.state !== "ENABLED" || q.status === "INVALID") {
    throw new BatchConfigError(
      "NBSCALE_BATCH_QUEUE",
      `job queue \`${queue}\` is ${q.state}${q.status ? `/${q.status}` : ""}${q.statusReason ? ` (${q.statusReason})` : ""}; enable it or use another queue`,
    );
  }
  const arns = (q.computeEnvironmentOrder ?? []).map((c) => c.computeEnvironment!).filter(Boolean);
  if (arns.length === 0) {
    throw new BatchConfigError("NBSCALE_BATCH_QUEUE", `job queue \`${queue}\` has no compute environment: its jobs would never start`);
  }
  const ces = (await client.send(new DescribeComputeEnvironmentsCommand({ computeEnvironments: arns }))).computeEnvironments ?? [];
  if (ces.length > 0 && ces.every(isFargate)) {
    throw new BatchConfigError(
      "NBSCALE_BATCH_QUEUE",
      `job queue \`${queue}\` has only Fargate compute environments; nbscale's job definitions use the EC2 platform (GPUs, any memory/vCPU pair): use a queue with EC2 or SPOT compute environments`,
    );
  }
  const why = unfit(ask, ces.map(environmentLimit));
  if (why) {
    throw new BatchConfigError(
      "--memory/--cpu/--gpu",
      `the step ${why}: no compute environment of queue \`${queue}\` can ever run it, so the job would stay RUNNABLE forever. Ask for less, or use a queue with larger instances`,
    );
  }
}

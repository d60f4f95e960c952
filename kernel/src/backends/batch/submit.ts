/**
 * The SubmitJob request for one step: queue, definition, per-step resources
 * (MEMORY in MiB, VCPU, GPU) in `containerOverrides.resourceRequirements`,
 * timeout and retries, and the environment the worker needs. Everything is a
 * structured field: no value is ever pasted into a command line.
 */
import type { KeyValuePair, ResourceRequirement, SubmitJobCommandInput } from "@aws-sdk/client-batch";
import { heapLimitMiB } from "../memory";

export interface JobRequest {
  step: string;
  queue: string;
  /** `name:revision`. */
  jobDefinition: string;
  /** Datastore URL, s3://bucket/prefix. */
  datastore: string;
  task: string;
  memory?: number;
  cpu?: number;
  gpu?: number;
  timeoutMs?: number;
  retries?: number;
  env: Record<string, string>;
  /** sha256 of the notebook folder's package-lock.json, when it has one. */
  depsLock?: string;
  /** Settings from the kernel's environment the job should see too (endpoint, region). */
  passthrough?: Record<string, string>;
  /** What the bootstrap installs when the image has no nbscale of the kernel's version (worker-package.ts). */
  workerPackage?: string;
  /** An array job of this many children (≥ 2); child i runs task `<task>-<i>`. */
  arraySize?: number;
}

const MiB = 2 ** 20;
/** Batch refuses attempt timeouts under a minute. */
const MIN_TIMEOUT_S = 60;
/** Batch's largest array job. */
export const MAX_ARRAY = 10_000;
/** Batch allows 1-10 attempts. */
const MAX_ATTEMPTS = 10;

/** Attempts Batch makes of a job for `--retries` (it allows 1-10). */
export function jobAttempts(retries: number | undefined): number {
  return Math.min(MAX_ATTEMPTS, 1 + Math.max(0, retries ?? 0));
}

export function memoryMiB(bytes: number): number {
  return Math.ceil(bytes / MiB);
}

export function resourceRequirements(r: Pick<JobRequest, "memory" | "cpu" | "gpu">): ResourceRequirement[] {
  const out: ResourceRequirement[] = [];
  if (r.memory !== undefined) out.push({ type: "MEMORY", value: String(memoryMiB(r.memory)) });
  if (r.cpu !== undefined) out.push({ type: "VCPU", value: String(r.cpu) });
  if (r.gpu !== undefined && r.gpu > 0) out.push({ type: "GPU", value: String(r.gpu) });
  return out;
}

/** Batch job names: letters, digits, `-`, `_`, up to 128; step names already are that. */
export function jobName(step: string): string {
  return `nbscale-${step.replace(/[^A-Za-z0-9_-]/g, "_")}`.slice(0, 128);
}

export function submitJobInput(r: JobRequest): SubmitJobCommandInput {
  const env: Record<string, string> = {
    // The container runs the kernel's Node major on purpose; the SDK's advice to upgrade is noise in the job's log.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    ...r.passthrough,
    ...r.env,
    // The worker's own settings come last: a user's --env can't redirect the task.
    NBSCALE_DATASTORE: r.datastore,
    NBSCALE_TASK: r.task,
    NBSCALE_STEP: r.step,
  };
  if (r.depsLock) env.NBSCALE_DEPS = r.depsLock;
  if (r.workerPackage) env.NBSCALE_WORKER_PACKAGE = r.workerPackage;
  // Every child runs the same command: the worker adds AWS_BATCH_JOB_ARRAY_INDEX to the task id.
  if (r.arraySize !== undefined) env.NBSCALE_TASK_ARRAY = "1";
  // The same heap limit as a local worker of that size: JavaScript runs out
  // as a catchable heap error before the container is killed from outside.
  if (r.memory !== undefined && env.NODE_OPTIONS === undefined) env.NODE_OPTIONS = `--max-old-space-size=${heapLimitMiB(r.memory)}`;
  const environment: KeyValuePair[] = Object.entries(env).map(([name, value]) => ({ name, value }));
  const input: SubmitJobCommandInput = {
    jobName: jobName(r.step),
    jobQueue: r.queue,
    jobDefinition: r.jobDefinition,
    containerOverrides: { resourceRequirements: resourceRequirements(r), environment },
    tags: { "nbscale:step": r.step, "nbscale:task": r.task },
  };
  if (r.arraySize !== undefined) {
    if (!Number.isInteger(r.arraySize) || r.arraySize < 2 || r.arraySize > MAX_ARRAY) {
      throw new Error(`an AWS Batch array has 2 to ${MAX_ARRAY} children, not ${r.arraySize}`);
    }
    input.arrayProperties = { size: r.arraySize };
  }
  if (r.timeoutMs !== undefined) input.timeout = { attemptDurationSeconds: Math.max(MIN_TIMEOUT_S, Math.ceil(r.timeoutMs / 1000)) };
  if (r.retries !== undefined && r.retries > 0) {
    input.retryStrategy = {
      attempts: jobAttempts(r.retries),
      // As locally, retry what another try can fix (a lost host, a failed pull or install), not
      // a step that threw (worker exit 1), a task that already ran (exit 2), or running out of memory.
      evaluateOnExit: [
        { onExitCode: "1", action: "EXIT" },
        { onExitCode: "2", action: "EXIT" },
        { onExitCode: "78", action: "EXIT" },
        { onReason: "OutOfMemoryError*", action: "EXIT" },
      ],
    };
  }
  return input;
}

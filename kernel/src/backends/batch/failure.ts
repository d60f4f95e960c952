/**
 * A FAILED job as the cell shows it: Batch's status reason and the
 * container's reason, the same memory advice as a local out-of-memory death
 * when the container was killed for memory, the timeout message for an
 * attempt that ran out of time, and the last log lines.
 */
import type { JobDetail } from "@aws-sdk/client-batch";
import { failure, outOfMemory, timedOut, type StepFailure } from "../step-failure";
import { DEFAULT_MEMORY_MIB } from "./jobdef";

export interface FailureFacts {
  statusReason?: string;
  containerReason?: string;
  exitCode?: number;
  logStream?: string;
  attempts: number;
}

/** The facts of the last attempt, where Batch puts them. */
export function failureFacts(job: Partial<JobDetail>): FailureFacts {
  const last = job.attempts?.[job.attempts.length - 1];
  return {
    statusReason: job.statusReason ?? last?.statusReason,
    containerReason: job.container?.reason ?? last?.container?.reason,
    exitCode: job.container?.exitCode ?? last?.container?.exitCode,
    logStream: job.container?.logStreamName ?? last?.container?.logStreamName,
    attempts: job.attempts?.length ?? 0,
  };
}

export function isOutOfMemory(f: FailureFacts): boolean {
  return /OutOfMemoryError/i.test(`${f.containerReason ?? ""} ${f.statusReason ?? ""}`) || f.exitCode === 137;
}

export function isTimeout(f: FailureFacts): boolean {
  return /attempt duration exceeded|timeout/i.test(f.statusReason ?? "");
}

export interface FailureContext {
  step: string;
  jobId: string;
  /** Bytes asked for, or undefined (the job definition's default applied). */
  memory?: number;
  timeoutMs?: number;
  /** Last lines of the job's log, when any could be read. */
  logTail: string[];
}

export function jobFailure(f: FailureFacts, c: FailureContext): StepFailure {
  const tail = c.logTail.length > 0 ? ["last lines of the job's log:", ...c.logTail.map((l) => `| ${l}`)] : [];
  const reasons = [
    f.statusReason && `status reason: ${f.statusReason}`,
    f.containerReason && `container: ${f.containerReason}`,
    f.exitCode !== undefined && `exit code ${f.exitCode}`,
  ]
    .filter(Boolean)
    .join("; ");
  const where = `(AWS Batch job ${c.jobId}${reasons ? `: ${reasons}` : ""})`;
  if (isOutOfMemory(f)) {
    // The container is killed at its limit: it used all of it.
    const limit = c.memory ?? DEFAULT_MEMORY_MIB * 2 ** 20;
    const e = outOfMemory({ step: c.step, requested: limit, used: limit, how: "the container was killed at its memory limit", job: c.jobId });
    return { ...e, details: [where, ...tail] };
  }
  if (isTimeout(f) && c.timeoutMs !== undefined) {
    return { ...timedOut(c.step, c.timeoutMs, "; AWS Batch stopped the job", c.jobId), details: [where, ...tail] };
  }
  const reason = f.containerReason ?? f.statusReason ?? (f.exitCode !== undefined ? `exit code ${f.exitCode}` : "no reason given");
  return failure("worker-died", "BatchJobFailed", `step \`${c.step}\`: AWS Batch job ${c.jobId} FAILED: ${reason}`, [where, ...tail], { job: c.jobId });
}

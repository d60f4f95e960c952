/**
 * A FAILED job as the cell shows it: Batch's status reason and the
 * container's reason, the same memory advice as a local out-of-memory death
 * when the container was killed for memory, the timeout message for an
 * attempt that ran out of time, and the last log lines.
 */
import type { JobDetail } from "@aws-sdk/client-batch";
import type { CellError } from "../../session/errors";
import { cellError, deathError } from "../../step/failures";
import type { TaskResult } from "../local-pool";
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

export function jobFailedError(f: FailureFacts, c: FailureContext): CellError {
  const tail = c.logTail.length > 0 ? ["    last lines of the job's log:", ...c.logTail.map((l) => `    | ${l}`)] : [];
  const reasons = [
    f.statusReason && `status reason: ${f.statusReason}`,
    f.containerReason && `container: ${f.containerReason}`,
    f.exitCode !== undefined && `exit code ${f.exitCode}`,
  ]
    .filter(Boolean)
    .join("; ");
  const where = `    (AWS Batch job ${c.jobId}${reasons ? `: ${reasons}` : ""}; the kernel and its variables are intact)`;
  if (isOutOfMemory(f)) {
    // The container is killed at its limit: it used all of it.
    const limit = c.memory ?? DEFAULT_MEMORY_MIB * 2 ** 20;
    const died = { status: "died", death: "oom", signal: "SIGKILL", code: 137, stderr: "", worker: { id: c.jobId, pid: 0 }, peakRss: limit } as Extract<
      TaskResult,
      { status: "died" }
    >;
    const e = deathError(c.step, died, limit);
    return { ...e, traceback: [e.traceback[0], where, ...tail] };
  }
  if (isTimeout(f) && c.timeoutMs !== undefined) {
    const died = { status: "died", death: "timeout", signal: null, code: null, stderr: "", worker: { id: c.jobId, pid: 0 }, peakRss: 0 } as Extract<
      TaskResult,
      { status: "died" }
    >;
    const e = deathError(c.step, died, c.memory, c.timeoutMs);
    return { ...e, traceback: [e.traceback[0], where, ...tail] };
  }
  const reason = f.containerReason ?? f.statusReason ?? (f.exitCode !== undefined ? `exit code ${f.exitCode}` : "no reason given");
  return cellError("BatchJobFailed", `step \`${c.step}\`: AWS Batch job ${c.jobId} FAILED: ${reason}`, [where, ...tail]);
}

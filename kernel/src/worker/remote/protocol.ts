/**
 * The remote transport's objects in the datastore: what a launcher (Slurm,
 * Batch) and `nbscale worker --task` agree on. Everything lives under
 * `tasks/<task-id>/` and is written once (createExclusive / putIfAbsent), so
 * the layout works the same on a shared directory and on S3:
 *
 *   tasks/<id>/task.json              the step: program, env, input refs (kernel)
 *   tasks/<id>/started.json           host, pid, launcher job id (worker, first)
 *   tasks/<id>/events/000001.jsonl    output, in numbered chunks (worker, ~every 200 ms)
 *   tasks/<id>/result.json            outputs as blob refs, or the error (worker, last;
 *                                     the first attempt to write it wins)
 *   tasks/<id>/attempt-<n>/…          started.json and events/ of attempt n ≥ 2, when the
 *                                     launcher retries the job (AWS Batch's retryStrategy)
 *   blobs/sha256/…                    input and output values: content-addressed,
 *                                     so an input the store has already is not written again
 *
 * Event chunks are separate objects instead of one appended file because an
 * object store can't append; the kernel reads chunk n+1 after chunk n, so it
 * never lists. `result.json` says how many chunks were written, so the kernel
 * reads every last line before it reports the outcome.
 */
import { randomBytes } from "node:crypto";
import type { OutputStub, RemoteError, StepEvent, StepProgram } from "../events";

export const TASKS_PREFIX = "tasks";
export const FORMAT = 1;

/** A task id: the step's name (for people listing the store), time, and randomness. */
export function newTaskId(step: string): string {
  const safe = step.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40) || "step";
  return `${safe}-${Date.now().toString(36)}-${randomBytes(5).toString("hex")}`;
}

export function checkTaskId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id)) throw new Error(`invalid task id ${JSON.stringify(id)}`);
}

export function taskKey(id: string, file: "task.json" | "started.json" | "result.json" | string): string {
  checkTaskId(id);
  return `${TASKS_PREFIX}/${id}/${file}`;
}

/**
 * An object of one attempt: the first keeps the layout of a task that is
 * never retried; a retry gets its own started marker and event log, so it is
 * not refused as a second worker and its output doesn't collide with the
 * lost attempt's.
 */
export function attemptKey(id: string, attempt: number, file: "started.json" | string): string {
  if (!Number.isInteger(attempt) || attempt < 1) throw new Error(`invalid attempt ${attempt}`);
  return attempt === 1 ? taskKey(id, file) : taskKey(id, `attempt-${attempt}/${file}`);
}

export function eventChunkKey(id: string, n: number, attempt = 1): string {
  return attemptKey(id, attempt, `events/${String(n).padStart(6, "0")}.jsonl`);
}

/** A value stored as one blob: its serialized bytes, so its hash is the artifact's hash. */
export interface ValueRef {
  name: string;
  type: string;
  sha256: string;
  size: number;
}

/** `task.json`. */
export interface RemoteTask {
  format: number;
  task: string;
  step: string;
  attempt: number;
  env: Record<string, string>;
  program: StepProgram;
  inputs: ValueRef[];
  /** Requested memory in bytes (the worker's heap limit is set by the launcher's command line). */
  memory?: number;
  /** How often the worker flushes its output (ms). */
  flushMs: number;
  created: string;
}

/** `started.json`: where the worker runs. */
export interface RemoteStarted {
  host: string;
  pid: number;
  /** The launcher's id for the job, when the worker can tell (SLURM_JOB_ID, AWS_BATCH_JOB_ID). */
  job?: string;
  /** The launcher's attempt (AWS_BATCH_JOB_ATTEMPT); 1 when it doesn't retry. */
  attempt?: number;
  started: string;
}

/**
 * One line of an event chunk: a StepEvent as the local pool carries it, or
 * the worker's memory so far (so an out-of-memory kill can still say how
 * much the step had used).
 */
export type RemoteRecord = StepEvent | { type: "usage"; peakRss: number };

interface ResultCommon {
  format: number;
  /** Event chunks written before this result: the kernel reads up to this one. */
  events: number;
  /** The attempt that wrote it (its event log is the one `events` counts); 1 when absent. */
  attempt?: number;
  peakRss: number;
  host: string;
  pid: number;
  finished: string;
}

/** How the step ended, as the worker saw it. */
export type ResultBody = { status: "done"; outputs: ValueRef[]; stubs: OutputStub[] } | { status: "failed"; error: RemoteError };

/** `result.json`. */
export type RemoteResult = ResultCommon & ResultBody;

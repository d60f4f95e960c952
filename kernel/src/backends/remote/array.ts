/**
 * A `--foreach` as one scheduler array job (Slurm `--array`, AWS Batch
 * `arrayProperties`), the parts every launcher shares:
 *
 * - the tasks: element i runs task `<base>-i`, carrying the shared inputs
 *   plus its own item; values are content-addressed blobs, so the shared
 *   inputs are written once and only stat'ed for the other elements;
 * - the watching: each element is followed like a single remote step
 *   (kernel-side.ts), all of them through one launcher whose status calls
 *   the backend answers from one shared poll, with the element counts
 *   (done / running / failed) reported as they change;
 * - an element's worker result as the TaskResult the foreach joins.
 *
 * What an element's ending without a result means is the launcher's to say
 * (its own states and logs), so that stays in each backend.
 */
import type { StepFailure } from "../step-failure";
import type { StorageBackend } from "../../store/backend";
import type { EncodedValues } from "../../worker/codec";
import type { StepEvent, StepProgram } from "../../worker/events";
import type { TaskResult } from "../local-pool";
import { putTask, watchTask, type Launcher, type LaunchStatus, type RemoteOutcome, type SubmittedTask } from "./kernel-side";
import { newTaskId, taskKey, type RemoteResult, type RemoteStarted } from "../../worker/remote/protocol";
import { loadValues } from "../../worker/remote/values";

type Inputs = Pick<EncodedValues, "specs" | "frames">;

export type ElementOutcome =
  /** The worker wrote a result (done or failed), or the element was cancelled (status "died"). */
  | { index: number; job: string; host?: string; started: Date; finished: Date; result: TaskResult }
  /** The element ended without a result: the scheduler's ending, as facts. */
  | { index: number; job: string; host?: string; started: Date; finished: Date; failure: StepFailure; peakRss: number };

export interface ElementCounts {
  done: number;
  running: number;
  failed: number;
}

export function elementTaskId(base: string, index: number): string {
  return `${base}-${index}`;
}

export interface ElementTasksRequest {
  step: string;
  env: Record<string, string>;
  program: StepProgram;
  common: Inputs;
  perItem: Inputs[];
  memory?: number;
  /** The foreach item each element runs (a retry runs some items again); by default element i runs item i. */
  items?: number[];
}

/**
 * Writes `tasks/<base>/array.json` and one task per item; returns the base
 * id and the base task (what a launcher submits the array for).
 */
export async function putElementTasks(backend: StorageBackend, req: ElementTasksRequest): Promise<{ base: string; task: SubmittedTask }> {
  const n = req.perItem.length;
  const base = newTaskId(req.step);
  // Also makes tasks/<base>/ exist: a shared-directory datastore may need it for the scheduler's own files.
  await backend.createExclusive(taskKey(base, "array.json"), Buffer.from(JSON.stringify({ step: req.step, items: n, created: new Date().toISOString() })));
  for (let i = 0; i < n; i++) {
    const item = req.items?.[i] ?? i;
    await putTask(backend, {
      id: elementTaskId(base, i),
      step: `${req.step}[${item}]`,
      attempt: 1,
      env: { ...req.env, NBSCALE_FOREACH_INDEX: String(item) },
      program: req.program,
      inputs: { specs: [...req.common.specs, ...req.perItem[i].specs], frames: [...req.common.frames, ...req.perItem[i].frames] },
      memory: req.memory,
    });
  }
  return { base, task: { id: base, step: req.step, attempt: 1, memory: req.memory } };
}

export interface WatchElementsOptions<S extends LaunchStatus> {
  backend: StorageBackend;
  base: string;
  task: SubmittedTask;
  n: number;
  /** The foreach item of each element, for labels (see ElementTasksRequest). */
  items?: number[];
  /** Status and cancel of element i (`job` = the index), answered from one shared poll. */
  launcher: Launcher<number, S>;
  signal: AbortSignal;
  onEvent(index: number, e: StepEvent): void;
  onCounts(c: ElementCounts): void;
  /** Launcher retries of each element (AWS Batch's retryStrategy); 1 by default. */
  maxAttempts?: number;
  onAttempt?(index: number, attempt: number, started: RemoteStarted): void;
  /** Passed to each element's watchTask. */
  statusMs?: number;
  maxStatusMs?: number;
  endGraceMs?: number;
}

export interface WatchedElement<S> {
  index: number;
  started: Date;
  finished: Date;
  outcome: RemoteOutcome<S>;
}

/** Follows every element to its outcome, in item order; counts are reported as elements start and end. */
export async function watchElements<S extends LaunchStatus>(o: WatchElementsOptions<S>): Promise<Array<WatchedElement<S>>> {
  const phase: Array<"queued" | "running" | "done" | "failed"> = new Array(o.n).fill("queued");
  const report = () =>
    o.onCounts({
      done: phase.filter((p) => p === "done").length,
      running: phase.filter((p) => p === "running").length,
      failed: phase.filter((p) => p === "failed").length,
    });
  const watchOne = async (index: number): Promise<WatchedElement<S>> => {
    const started = new Date();
    const running = () => {
      if (phase[index] !== "queued") return;
      phase[index] = "running";
      report();
    };
    const outcome = await watchTask<number, S>({
      backend: o.backend,
      task: { ...o.task, id: elementTaskId(o.base, index), step: `${o.task.step}[${o.items?.[index] ?? index}]` },
      launcher: o.launcher,
      job: index,
      onEvent: (e) => {
        // Output means it runs, even if the shared poll has not seen it start yet.
        running();
        o.onEvent(index, e);
      },
      onStatus: (s, up) => {
        if (s.phase === "running" || up) running();
      },
      signal: o.signal,
      statusMs: o.statusMs,
      maxStatusMs: o.maxStatusMs,
      endGraceMs: o.endGraceMs,
      maxAttempts: o.maxAttempts,
      onAttempt: (attempt, up) => o.onAttempt?.(index, attempt, up),
    });
    phase[index] = outcome.kind === "result" && outcome.result.status === "done" ? "done" : "failed";
    report();
    return { index, started, finished: new Date(), outcome };
  };
  return await Promise.all(Array.from({ length: o.n }, (_, i) => watchOne(i)));
}

/** An element's worker result as the TaskResult a foreach joins (outputs read back, hash-verified). */
export async function elementResult(
  backend: StorageBackend,
  label: string,
  r: RemoteResult,
  worker: TaskResult["worker"],
  attempts?: number,
): Promise<TaskResult> {
  const extra = attempts !== undefined && attempts > 1 ? { attempts } : {};
  if (r.status === "failed") return { status: "failed", error: r.error, worker, peakRss: r.peakRss, ...extra };
  const { specs, frames } = await loadValues(backend, r.outputs, `step \`${label}\` output`);
  return { status: "done", outputs: specs, pieces: frames, stubs: r.stubs, worker, peakRss: r.peakRss, ...extra };
}

/** A cancelled element, as the foreach reports it. */
export function cancelledElement(worker: TaskResult["worker"], peakRss: number): TaskResult {
  return { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker, peakRss };
}

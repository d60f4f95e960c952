/**
 * The live status of a `%%step` cell, as a Jupyter MIME bundle: the
 * `application/vnd.nbscale.step+json` payload that the JupyterLab extension
 * renders (src/status/schema.ts in the extension describes the same JSON;
 * a jest test there checks this module's output against it) plus a
 * `text/plain` line for every other frontend (VS Code, nbconvert, papermill
 * outputs read by people).
 *
 * The step handler shows it once as display_data with a display_id and
 * replaces it in place with update_display_data as the step moves on:
 *
 *   const status = new StepStatusDisplay({ step: "train", state: "queued", target: "local" });
 *   status.update({ state: "running", worker: "w1 pid 4242", startedAt: new Date().toISOString() });
 *   status.update({ state: "failed", error: { kind: "oom", message: "…", suggestedMemory: "8G" } });
 */
import { display, type DisplayHandle } from "../client/display";
import type { ExecOutcome } from "./executor";

export const STEP_STATUS_MIME = "application/vnd.nbscale.step+json";

export type StepState = "queued" | "starting" | "running" | "succeeded" | "failed" | "cancelled";

export interface StepStatus {
  step: string;
  state: StepState;
  target?: string;
  /** Local worker id, e.g. "w3 pid 4242". */
  worker?: string;
  /** AWS Batch or Slurm job id. */
  jobId?: string;
  memory?: { requestedBytes?: number | null; peakBytes?: number | null };
  /** ISO time the step started running. */
  startedAt?: string;
  /** Run time so far (or in all, once finished), in ms. */
  elapsedMs?: number;
  /** 1 for the first try. */
  attempt?: number;
  /** `--retries`. */
  retries?: number;
  foreach?: { done: number; running: number; failed: number; total: number };
  /**
   * A scheduler's job (AWS Batch, Slurm): its own state now, and the time
   * spent in each state so far (the last one still counting while not final).
   * `state` above is what the state means for the step (RUNNABLE is queued).
   */
  job?: { system: string; state: string; states: Array<{ state: string; ms?: number }> };
  error?: {
    kind: "oom" | "exception" | "timeout" | "killed" | "serialization" | "infrastructure" | string;
    message: string;
    /** For "oom": a SIZE to ask for next, e.g. "8G". */
    suggestedMemory?: string;
  } | null;
}

function bytes(n: number): string {
  const units: Array<[string, number]> = [
    ["TiB", 2 ** 40],
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ];
  for (const [u, size] of units) {
    if (n >= size) {
      const v = n / size;
      return `${v >= 10 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${u}`;
    }
  }
  return `${n} B`;
}

function duration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} m`;
}

/** One line (two with an error) for frontends without the extension. */
export function stepStatusText(s: StepStatus): string {
  const parts = [`step ${s.step}: ${s.state}`];
  if (s.target) parts.push(`on ${s.target}`);
  if (s.worker) parts.push(`worker ${s.worker}`);
  if (s.jobId) parts.push(`job ${s.jobId}`);
  if (s.job && s.job.states.length > 0) parts.push(s.job.states.map((j) => (j.ms === undefined ? j.state : `${j.state} ${duration(j.ms)}`)).join(" → "));
  if (s.attempt !== undefined && (s.attempt > 1 || (s.retries ?? 0) > 0)) parts.push(`attempt ${s.attempt} of ${Math.max(s.attempt, (s.retries ?? 0) + 1)}`);
  const req = s.memory?.requestedBytes ?? null;
  const peak = s.memory?.peakBytes ?? null;
  if (req !== null && peak !== null) parts.push(`memory ${bytes(peak)} peak of ${bytes(req)}`);
  else if (req !== null) parts.push(`memory ${bytes(req)} requested`);
  else if (peak !== null) parts.push(`memory ${bytes(peak)} peak`);
  if (s.elapsedMs !== undefined) parts.push(duration(s.elapsedMs));
  if (s.foreach) {
    const f = s.foreach;
    parts.push(`${f.done}/${f.total} done, ${f.running} running, ${f.failed} failed`);
  }
  let text = parts.join(" · ");
  if (s.error) {
    text += `\n${s.error.kind}: ${s.error.message}`;
    if (s.error.kind === "oom") {
      text += s.error.suggestedMemory ? ` — re-run with --memory ${s.error.suggestedMemory}` : " — re-run with a larger --memory";
    }
  }
  return text;
}

/** The bundle to publish: the extension's MIME type and a text fallback. */
export function stepStatusBundle(status: StepStatus): Record<string, unknown> {
  // JSON-clean copy: no undefined fields on the wire
  const payload = JSON.parse(JSON.stringify(status)) as Record<string, unknown>;
  return { [STEP_STATUS_MIME]: payload, "text/plain": stepStatusText(status) };
}

/**
 * One status output in the running cell, updated in place. Publishing goes
 * through the kernel's display sink, so it lands in the cell whose request
 * is being handled.
 */
export class StepStatusDisplay {
  private readonly handle: DisplayHandle = display.create();
  private current: StepStatus;

  constructor(initial: StepStatus) {
    this.current = { ...initial };
    this.handle.bundle(stepStatusBundle(this.current));
  }

  get status(): Readonly<StepStatus> {
    return this.current;
  }

  /** Merges `patch` into the status and replaces the output. */
  update(patch: Partial<StepStatus>): void {
    this.current = { ...this.current, ...patch };
    if (patch.state === "running" && !this.current.startedAt) this.current.startedAt = new Date().toISOString();
    this.handle.bundle(stepStatusBundle(this.current));
  }
}

let active: StepStatusDisplay | null = null;

/**
 * The status output of the step running now, for a backend that knows more
 * than the dispatcher (a Batch job's queue state, a retry); null outside a
 * tracked step (a --foreach shows its own progress).
 */
export function activeStepStatus(): StepStatusDisplay | null {
  return active;
}

/** The part of a parsed `%%step` line the status shows. */
export interface TrackedStep {
  options: { name?: string | null; on?: string; memory?: number; retries?: number };
}

/** How a step's error name reads as a status error kind. */
function errorKind(ename: string): string {
  switch (ename) {
    case "StepOutOfMemory":
      return "oom";
    case "StepTimeout":
      return "timeout";
    case "WorkerDied":
      return "killed";
    case "UnserializableInput":
      return "serialization";
    case "WorkerStartError":
    case "StepTargetUnavailable":
      return "infrastructure";
    default:
      return "exception";
  }
}

/**
 * Runs a step with a live status output in its cell: shown as running when
 * it starts, replaced with the outcome (worker, peak memory, attempts, the
 * error and, for out-of-memory, the `--memory` the error suggests) when it
 * ends. `run` is the step itself; its outcome is returned unchanged.
 */
export async function trackStep(step: TrackedStep, cellId: string | undefined, run: () => Promise<ExecOutcome>): Promise<ExecOutcome> {
  const o = step.options;
  // the step runner names unnamed steps the same way
  const name = o.name ?? (cellId ? `cell-${cellId.slice(0, 8)}` : "step");
  const started = Date.now();
  const status = new StepStatusDisplay({
    step: name,
    state: "running",
    ...(o.on ? { target: o.on } : {}),
    ...(o.memory !== undefined ? { memory: { requestedBytes: o.memory } } : {}),
    startedAt: new Date(started).toISOString(),
    ...(o.retries ? { attempt: 1, retries: o.retries } : {}),
  });
  let outcome: ExecOutcome;
  active = status;
  try {
    outcome = await run();
  } catch (e) {
    status.update({ state: "failed", elapsedMs: Date.now() - started, error: { kind: "exception", message: e instanceof Error ? e.message : String(e) } });
    throw e;
  } finally {
    active = null;
  }
  const meta = outcome.meta;
  const w = meta?.worker;
  const patch: Partial<StepStatus> = {
    elapsedMs: Date.now() - started,
    memory: { requestedBytes: meta?.memory?.requestedBytes ?? o.memory ?? null, peakBytes: meta?.memory?.peakBytes ?? null },
  };
  if (w?.job) patch.jobId = w.job;
  else if (w?.id) patch.worker = w.pid !== undefined && w.id !== "kernel" ? `${w.id} pid ${w.pid}` : w.id;
  if (meta?.attempts !== undefined && (meta.attempts > 1 || o.retries)) patch.attempt = meta.attempts;
  // A job's time in the queue is not the step's run time: the clock starts when it ran.
  const ranSince = status.status.job ? Date.parse(status.status.startedAt ?? "") : NaN;
  if (Number.isFinite(ranSince)) patch.elapsedMs = Math.max(0, Date.now() - ranSince);
  if (outcome.ok) {
    status.update({ ...patch, state: "succeeded" });
  } else if (outcome.error.ename === "KeyboardInterrupt") {
    status.update({ ...patch, state: "cancelled" });
  } else {
    const kind = errorKind(outcome.error.ename);
    const suggested = kind === "oom" ? /--memory ([0-9][^`\s]*)/.exec(outcome.error.evalue)?.[1] : undefined;
    status.update({
      ...patch,
      state: "failed",
      error: { kind, message: outcome.error.evalue, ...(suggested ? { suggestedMemory: suggested } : {}) },
    });
  }
  return outcome;
}

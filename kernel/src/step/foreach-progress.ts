/**
 * The live progress of a `--foreach` step: one step-status output in the
 * cell (the `foreach` field drives the JupyterLab progress bar), replaced in
 * place as items start and finish, with a text bar as the `text/plain`
 * fallback for every other frontend.
 *
 * Updates are throttled: a foreach of thousands of quick items would
 * otherwise send two display updates per item. A one-second tick keeps the
 * elapsed time and the estimate moving while long items run.
 */
import { display, type DisplayHandle } from "../client/display";
import { stepStatusBundle, STEP_STATUS_MIME, type StepState, type StepStatus } from "../session/step-status";

const MIN_INTERVAL_MS = 100;
const TICK_MS = 1000;
const BAR_WIDTH = 24;

export interface Counts {
  done: number;
  running: number;
  failed: number;
  total: number;
}

export class ForeachProgress {
  private readonly handle: DisplayHandle = display.create();
  private readonly started = Date.now();
  private state: StepState = "running";
  private counts: Counts;
  private lastSent = 0;
  private pending: NodeJS.Timeout | null = null;
  private readonly tick: NodeJS.Timeout;
  private error: StepStatus["error"] = null;
  private job: string | undefined;

  constructor(
    private readonly base: Pick<StepStatus, "step" | "target" | "memory" | "retries">,
    total: number,
  ) {
    this.counts = { done: 0, running: 0, failed: 0, total };
    this.send();
    this.tick = setInterval(() => this.send(), TICK_MS);
  }

  /** New counts; shown within MIN_INTERVAL_MS. */
  set(counts: Omit<Counts, "total">): void {
    this.counts = { ...counts, total: this.counts.total };
    if (this.pending) return;
    const wait = Math.max(0, this.lastSent + MIN_INTERVAL_MS - Date.now());
    this.pending = setTimeout(() => {
      this.pending = null;
      this.send();
    }, wait);
  }

  /** The launcher's job for all items (a Slurm array job), shown from the next update on. */
  setJob(jobId: string): void {
    this.job = jobId;
    this.set(this.counts);
  }

  /** The final state, shown at once; no update follows (the cell is over). */
  finish(state: StepState, error?: StepStatus["error"]): void {
    clearInterval(this.tick);
    if (this.pending) clearTimeout(this.pending);
    this.pending = null;
    this.state = state;
    this.error = error ?? null;
    this.counts = { ...this.counts, running: 0 };
    this.send();
  }

  /** Milliseconds left, from the pace of finished items; null until one finished. */
  private estimateMs(elapsed: number): number | null {
    const finished = this.counts.done + this.counts.failed;
    if (finished === 0 || this.state !== "running") return null;
    return Math.round((elapsed / finished) * (this.counts.total - finished));
  }

  private send(): void {
    this.lastSent = Date.now();
    const elapsedMs = this.lastSent - this.started;
    const status: StepStatus = {
      ...this.base,
      state: this.state,
      startedAt: new Date(this.started).toISOString(),
      elapsedMs,
      foreach: { ...this.counts },
      ...(this.job ? { jobId: this.job } : {}),
      ...(this.error ? { error: this.error } : {}),
    };
    const bundle = stepStatusBundle(status);
    const eta = this.estimateMs(elapsedMs);
    // Not in the status schema yet: renderers that don't know it ignore it.
    if (eta !== null) (bundle[STEP_STATUS_MIME] as Record<string, unknown>).etaMs = eta;
    bundle["text/plain"] = progressText(status, eta);
    this.handle.bundle(bundle);
  }
}

/**
 * `step fit: running [█████████░░░░░░░░░░░░░░░] 3/8 done · 2 running · 0 failed · 4.1 s · ~6.8 s left`
 */
export function progressText(s: StepStatus, etaMs: number | null): string {
  const f = s.foreach!;
  const finished = f.done + f.failed;
  const filled = f.total === 0 ? BAR_WIDTH : Math.round((finished / f.total) * BAR_WIDTH);
  const bar = `[${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}]`;
  const parts = [`step ${s.step}: ${s.state} ${bar} ${f.done}/${f.total} done`, `${f.running} running`, `${f.failed} failed`];
  if (s.elapsedMs !== undefined) parts.push(seconds(s.elapsedMs));
  if (etaMs !== null) parts.push(`~${seconds(etaMs)} left`);
  let text = parts.join(" · ");
  if (s.error) text += `\n${s.error.kind}: ${s.error.message}`;
  return text;
}

function seconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return s < 3600
    ? `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`
    : `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, "0")} m`;
}

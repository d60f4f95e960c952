/**
 * What `nbscale run` shows while it runs. On a terminal: one live line per
 * running step with its elapsed time (and a bar for foreach), redrawn in
 * place; finished steps scroll above. Elsewhere (CI logs, pipes): plain
 * lines, one per event. Step output goes to the step's log; on a terminal
 * it is not echoed (it would tear the live lines), in plain mode it is,
 * prefixed with the step name.
 */
import type { StepRecord } from "../store/runs";
import type { JobState } from "./pool";
import type { RunResult } from "./runner";

export interface Progress {
  begin(run: string, flowPath: string, steps: number): void;
  started(step: string): void;
  output(label: string, text: string): void;
  items(step: string, done: number, total: number): void;
  /** A Slurm/Batch job's state changed (item: the foreach item it runs, or null). */
  jobState(step: string, item: number | null, state: JobState): void;
  finished(step: string, rec: StepRecord, elapsedMs: number): void;
  end(result: RunResult): void;
}

export function elapsed(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function outcome(rec: StepRecord, ms: number): string {
  if (rec.status === "succeeded" && !rec.executed) return `reused   ${rec.step} (unchanged since ${rec.reused_from})`;
  if (rec.status === "succeeded") return `done     ${rec.step} in ${elapsed(ms)}`;
  if (rec.status === "skipped") return `skipped  ${rec.step}: ${rec.error?.message ?? ""}`;
  return `FAILED   ${rec.step} after ${elapsed(ms)}: ${rec.error?.message ?? ""}`;
}

export class PlainProgress implements Progress {
  private readonly partial = new Map<string, string>();
  constructor(private readonly out: NodeJS.WritableStream) {}
  begin(run: string, flowPath: string, steps: number): void {
    this.out.write(`run ${run}: ${steps} step${steps === 1 ? "" : "s"} of ${flowPath}\n`);
  }
  started(step: string): void {
    this.out.write(`started  ${step}\n`);
  }
  output(label: string, text: string): void {
    const lines = ((this.partial.get(label) ?? "") + text).split("\n");
    this.partial.set(label, lines.pop()!);
    for (const l of lines) this.out.write(`  ${label} | ${l}\n`);
  }
  items(step: string, done: number, total: number): void {
    this.out.write(`items    ${step} ${done}/${total}\n`);
  }
  jobState(_step: string, _item: number | null, _state: JobState): void {
    // Already in the step's output lines ("[nbscale] Slurm job 12: RUNNING"), which plain mode prints.
  }
  finished(step: string, rec: StepRecord, ms: number): void {
    const rest = this.partial.get(step);
    if (rest) this.out.write(`  ${step} | ${rest}\n`);
    this.partial.delete(step);
    this.out.write(outcome(rec, ms) + "\n");
  }
  end(result: RunResult): void {
    this.out.write(`run ${result.run} ${result.status}\n`);
  }
}

export class TtyProgress implements Progress {
  private readonly running = new Map<string, { start: number; done?: number; total?: number; jobs?: Map<number | null, JobState> }>();
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly out: NodeJS.WritableStream & { columns?: number }) {}

  begin(run: string, flowPath: string, steps: number): void {
    this.out.write(`run ${run}: ${steps} step${steps === 1 ? "" : "s"} of ${flowPath}\n`);
    this.timer = setInterval(() => this.draw(), 250);
    this.timer.unref();
  }
  started(step: string): void {
    this.running.set(step, { start: Date.now() });
    this.draw();
  }
  output(): void {
    // In the step's log; see the module comment.
  }
  items(step: string, done: number, total: number): void {
    const r = this.running.get(step);
    if (r) Object.assign(r, { done, total });
    this.draw();
  }
  jobState(step: string, item: number | null, state: JobState): void {
    const r = this.running.get(step);
    if (!r) return;
    r.jobs ??= new Map();
    if (state.phase === "ended" && item !== null) r.jobs.delete(item);
    else r.jobs.set(item, state);
    this.draw();
  }
  finished(step: string, rec: StepRecord, ms: number): void {
    this.running.delete(step);
    this.draw([outcome(rec, ms)]);
  }
  end(result: RunResult): void {
    if (this.timer) clearInterval(this.timer);
    this.draw([`run ${result.run} ${result.status}`]);
  }

  /** Clears the live block, prints `permanent` lines, then redraws the live block. */
  private draw(permanent: string[] = []): void {
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const l of permanent) text += `\x1b[2K${l.slice(0, width)}\n`;
    const now = Date.now();
    const live = [...this.running.entries()].map(([name, r]) => {
      let line = `  ▸ ${name}  ${elapsed(now - r.start)}`;
      if (r.total !== undefined) {
        const cells = 20;
        const filled = r.total === 0 ? cells : Math.round((cells * (r.done ?? 0)) / r.total);
        line += `  [${"#".repeat(filled)}${".".repeat(cells - filled)}] ${r.done ?? 0}/${r.total}`;
      }
      const jobs = r.jobs ? jobSummary(r.jobs) : "";
      if (jobs) line += `  ${jobs}`;
      return line.slice(0, width);
    });
    for (const l of live) text += `\x1b[2K${l}\n`;
    // Erase lines left over from a longer previous block.
    const extra = Math.max(0, this.drawn - permanent.length - live.length);
    for (let i = 0; i < extra; i++) text += `\x1b[2K\n`;
    if (extra > 0) text += `\x1b[${extra}A`;
    this.drawn = live.length;
    this.out.write(text);
  }
}

/** One job: its state line. Items' jobs: how many are in each phase (`2 running · 6 queued`). */
export function jobSummary(jobs: Map<number | null, JobState>): string {
  const single = jobs.get(null);
  if (single) return single.text;
  const counts = new Map<string, number>();
  for (const j of jobs.values()) {
    const phase = j.phase === "submitted" ? "queued" : j.phase;
    counts.set(phase, (counts.get(phase) ?? 0) + 1);
  }
  return ["running", "queued", "ended"]
    .filter((p) => counts.get(p))
    .map((p) => `${counts.get(p)} ${p}`)
    .join(" · ");
}

export function progressFor(out: NodeJS.WritableStream): Progress {
  return (out as { isTTY?: boolean }).isTTY ? new TtyProgress(out) : new PlainProgress(out);
}

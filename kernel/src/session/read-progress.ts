/**
 * A live line for a long read (`%restore` of a large value). Shown only once
 * the read has taken long enough to notice, redrawn a few times a second, and
 * left saying how much was read and verified, and how fast.
 */
import { display, type DisplayHandle } from "../client/display";
import { humanBytes } from "../backends/memory";

/** Reads quicker than this show nothing: a line that flashes by is noise. */
const SHOW_AFTER_MS = 400;

/**
 * How long a read or a recording runs before its live line appears: `fallback`
 * unless NBSCALE_PROGRESS_AFTER_MS says (milliseconds; `0` shows the line of
 * every read and recording that has one, whatever the machine's speed, which
 * is what tests use).
 */
export function progressAfterMs(fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const set = env.NBSCALE_PROGRESS_AFTER_MS?.trim();
  return set && /^\d+$/.test(set) ? Number(set) : fallback;
}
const REDRAW_MS = 200;
const BAR_CELLS = 20;

export class ReadProgress {
  private handle: DisplayHandle | null = null;
  private drawn = 0;
  private readonly started: number;

  constructor(
    private readonly label: string,
    private readonly now: () => number = Date.now,
    private readonly showAfterMs = progressAfterMs(SHOW_AFTER_MS),
  ) {
    this.started = now();
  }

  update(done: number, total: number): void {
    const t = this.now();
    if (t - this.started < this.showAfterMs || t - this.drawn < REDRAW_MS || done >= total) return;
    this.drawn = t;
    const filled = total > 0 ? Math.round((BAR_CELLS * done) / total) : BAR_CELLS;
    (this.handle ??= display.create()).text(
      `reading ${this.label}  [${"#".repeat(filled)}${".".repeat(BAR_CELLS - filled)}] ${humanBytes(done)} of ${humanBytes(total)}, verified as read`,
    );
  }

  /** The line's last words; nothing when it was never shown. */
  finish(total: number): void {
    if (!this.handle) return;
    const seconds = Math.max(0.001, (this.now() - this.started) / 1000);
    this.handle.text(`read ${this.label}: ${humanBytes(total)} in ${seconds.toFixed(1)} s (${humanBytes(total / seconds)}/s), every chunk verified`);
  }
}

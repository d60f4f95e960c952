/**
 * What a cell shows while its large values are recorded. Recording runs after
 * the execute_reply with the kernel still busy (so nothing changes the values
 * meanwhile); for a multi-GiB value that is seconds in which the cell looks
 * done but the next one waits. Past a short delay the cell says what is being
 * written, then what was recorded and how long it took.
 */
import { display, type DisplayHandle } from "../client/display";
import { humanBytes } from "../backends/memory";
import { progressAfterMs } from "./read-progress";

/** Values smaller than this together never get the line: they are written in well under the delay. */
export const RECORD_NOTE_MIN_BYTES = 64 << 20;
const SHOW_AFTER_MS = 500;

export class RecordingNote {
  private handle: DisplayHandle | null = null;
  private readonly timer: NodeJS.Timeout | null = null;
  private readonly started = Date.now();

  /** `showAfterMs` 0 (NBSCALE_PROGRESS_AFTER_MS=0): the line is shown at once, not from a timer. */
  constructor(
    private readonly values: Array<{ name: string; bytes: number }>,
    where: string,
    showAfterMs = progressAfterMs(SHOW_AFTER_MS),
  ) {
    const show = () => {
      this.handle = display.create();
      this.handle.text(`recording ${this.list()} to ${where}…`);
    };
    if (showAfterMs <= 0) {
      show();
      return;
    }
    this.timer = setTimeout(show, showAfterMs);
    this.timer.unref();
  }

  /** `versions`: each value's recorded version (a value already stored keeps its version). */
  done(versions: Record<string, number>): void {
    if (this.timer) clearTimeout(this.timer);
    if (!this.handle) return;
    const seconds = (Date.now() - this.started) / 1000;
    this.handle.text(`recorded ${this.list(versions)} in ${seconds.toFixed(1)} s`);
  }

  failed(): void {
    if (this.timer) clearTimeout(this.timer);
    this.handle?.text(`recording ${this.list()} failed (see the warning below)`);
  }

  private list(versions?: Record<string, number>): string {
    return this.values.map((v) => `${v.name}${versions?.[v.name] !== undefined ? `@${versions[v.name]}` : ""} (${humanBytes(v.bytes)})`).join(", ");
  }
}

/**
 * What a cell shows while its large values are recorded. Recording runs after
 * the execute_reply with the kernel still busy (so nothing changes the values
 * meanwhile); for a multi-GiB value that is seconds in which the cell looks
 * done but the next one waits. Past a short delay the cell says what is being
 * written, then what was recorded and how long it took.
 */
import { display, type DisplayHandle } from "../client/display";
import { humanBytes } from "../backends/memory";

/** Values smaller than this together never get the line: they are written in well under the delay. */
export const RECORD_NOTE_MIN_BYTES = 64 << 20;
const SHOW_AFTER_MS = 500;

export class RecordingNote {
  private handle: DisplayHandle | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly started = Date.now();

  constructor(private readonly values: Array<{ name: string; bytes: number }>, where: string) {
    this.timer = setTimeout(() => {
      this.handle = display.create();
      this.handle.text(`recording ${this.list()} to ${where}…`);
    }, SHOW_AFTER_MS);
    this.timer.unref();
  }

  /** `versions`: each value's recorded version (a value already stored keeps its version). */
  done(versions: Record<string, number>): void {
    clearTimeout(this.timer);
    if (!this.handle) return;
    const seconds = (Date.now() - this.started) / 1000;
    this.handle.text(`recorded ${this.list(versions)} in ${seconds.toFixed(1)} s`);
  }

  failed(): void {
    clearTimeout(this.timer);
    this.handle?.text(`recording ${this.list()} failed (see the warning below)`);
  }

  private list(versions?: Record<string, number>): string {
    return this.values.map((v) => `${v.name}${versions?.[v.name] !== undefined ? `@${versions[v.name]}` : ""} (${humanBytes(v.bytes)})`).join(", ");
  }
}

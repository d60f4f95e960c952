/**
 * Output of foreach items running side by side: each complete line of an
 * item's stdout/stderr goes to the cell prefixed with `[index]`, so lines of
 * concurrent items interleave but never mix mid-line and stay attributable;
 * each item's own text is also kept (unprefixed) for its execution record.
 */
import type { StepEvent } from "../worker/events";
import { logLimit } from "../worker/log-limit";
import { formatMB } from "../magics/units";

export class ItemOutput {
  stdout = "";
  stderr = "";
  private readonly partial = { stdout: "", stderr: "" };
  /** An item's record keeps as much as a cell's (NBSCALE_LOG_BYTES); the cell shows what its own limit allows. */
  private readonly limit = logLimit(process.env);
  private readonly dropped = { stdout: 0, stderr: 0 };

  constructor(
    private readonly index: number,
    private readonly forward: (e: StepEvent) => void,
  ) {}

  onEvent(e: StepEvent): void {
    if (e.type === "stream") {
      if (this.dropped[e.name] === 0 && this[e.name].length + e.text.length <= this.limit) this[e.name] += e.text;
      else this.dropped[e.name] += Buffer.byteLength(e.text);
      const text = this.partial[e.name] + e.text;
      const cut = text.lastIndexOf("\n") + 1;
      this.partial[e.name] = text.slice(cut);
      if (cut > 0) this.forward({ ...e, text: this.prefix(text.slice(0, cut)) });
      return;
    }
    // One item clearing the cell would wipe the progress and every other item's output.
    if (e.type === "clear") return;
    this.forward(e);
  }

  /** Sends what is left of unterminated lines (at the item's end). */
  flush(): void {
    for (const name of ["stdout", "stderr"] as const) {
      if (this.partial[name]) this.forward({ type: "stream", name, text: this.prefix(`${this.partial[name]}\n`) });
      this.partial[name] = "";
      if (this.dropped[name] > 0) {
        this[name] += `\n[nbscale: the last ${formatMB(this.dropped[name])} of this log were not recorded (NBSCALE_LOG_BYTES)]\n`;
        this.dropped[name] = 0;
      }
    }
  }

  private prefix(lines: string): string {
    return lines.replace(/^(?=.)/gm, `[${this.index}] `);
  }
}

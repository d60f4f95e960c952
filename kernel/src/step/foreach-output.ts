/**
 * Output of foreach items running side by side: each complete line of an
 * item's stdout/stderr goes to the cell prefixed with `[index]`, so lines of
 * concurrent items interleave but never mix mid-line and stay attributable;
 * each item's own text is also kept (unprefixed) for its execution record.
 */
import type { StepEvent } from "../worker/events";

export class ItemOutput {
  stdout = "";
  stderr = "";
  private readonly partial = { stdout: "", stderr: "" };

  constructor(
    private readonly index: number,
    private readonly forward: (e: StepEvent) => void,
  ) {}

  onEvent(e: StepEvent): void {
    if (e.type === "stream") {
      this[e.name] += e.text;
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
    }
  }

  private prefix(lines: string): string {
    return lines.replace(/^(?=.)/gm, `[${this.index}] `);
  }
}

/**
 * How much of a cell's output the cell shows (NBSCALE_OUTPUT_BYTES); the capture
 * itself is worker/process-output.ts.
 */
import { formatMB, parseSize } from "../magics/units";

/** What a cell shows of its stdout+stderr by default: enough to read, little enough for a browser tab. */
export const DEFAULT_CELL_OUTPUT_BYTES = 1 << 20;

/**
 * The cell's share of output, from NBSCALE_OUTPUT_BYTES (bytes, or a size
 * like `4M`); a value that is not a size is reported once and ignored.
 */
export function cellOutputLimit(env: NodeJS.ProcessEnv, warn: (text: string) => void): number {
  const set = env.NBSCALE_OUTPUT_BYTES?.trim();
  if (!set) return DEFAULT_CELL_OUTPUT_BYTES;
  const n = /^\d+$/.test(set) ? Number(set) : parseSize(set);
  if (n !== undefined && Number.isSafeInteger(n) && n > 0) return n;
  warn(`warning: NBSCALE_OUTPUT_BYTES=${set} is not a size (bytes, or e.g. 4M); showing ${formatMB(DEFAULT_CELL_OUTPUT_BYTES)} per cell\n`);
  return DEFAULT_CELL_OUTPUT_BYTES;
}

interface Budget {
  shown: number;
  hidden: number;
}

/**
 * Bounds the stream output one request sends to the frontend. A cell (or a
 * step streaming through it) that prints without end would otherwise grow
 * the notebook document until the browser tab stalls; the datastore keeps
 * the whole log instead, and the cell ends with a note saying how much was
 * left out and where to read it.
 */
export class CellOutputLimit {
  private readonly budgets = new Map<string, Budget>();

  constructor(readonly limit: number) {}

  private budget(requestId: string): Budget {
    let b = this.budgets.get(requestId);
    if (!b) {
      b = { shown: 0, hidden: 0 };
      this.budgets.set(requestId, b);
      // Late output of old requests keeps their budget only while it is recent.
      if (this.budgets.size > 16) this.budgets.delete(this.budgets.keys().next().value as string);
    }
    return b;
  }

  /**
   * Whether a rich output of `bytes` may still be shown: displays add to the
   * notebook document like text does (updates of a display replace it and
   * are not counted).
   */
  admitWhole(requestId: string | undefined, bytes: number): boolean {
    if (!requestId) return true;
    const b = this.budget(requestId);
    if (b.hidden === 0 && b.shown + bytes <= this.limit) {
      b.shown += bytes;
      return true;
    }
    b.hidden += bytes;
    return false;
  }

  /** The part of `text` the request may still show ("" once its budget is spent). */
  admit(requestId: string | undefined, text: string): string {
    if (!requestId) return text;
    const b = this.budget(requestId);
    if (b.hidden > 0) {
      b.hidden += Buffer.byteLength(text);
      return "";
    }
    const bytes = Buffer.byteLength(text);
    if (b.shown + bytes <= this.limit) {
      b.shown += bytes;
      return text;
    }
    // Cut at the last line end that fits, so the cell does not end mid-line.
    let head = text.slice(0, Math.max(0, this.limit - b.shown));
    while (Buffer.byteLength(head) > this.limit - b.shown) head = head.slice(0, Math.floor(head.length * 0.9));
    const nl = head.lastIndexOf("\n");
    if (nl >= 0) head = head.slice(0, nl + 1);
    else if (b.shown > 0) head = ""; // a line already under way elsewhere: show none of it rather than a stub
    const headBytes = Buffer.byteLength(head);
    b.shown += headBytes;
    b.hidden = bytes - headBytes;
    const sep = head === "" || head.endsWith("\n") ? "" : "\n";
    return `${head}${sep}[nbscale: output beyond ${formatMB(this.limit)} is not shown here; the whole log is recorded]\n`;
  }

  /** Bytes of the request's output not shown so far. */
  hidden(requestId: string): number {
    return this.budgets.get(requestId)?.hidden ?? 0;
  }
}

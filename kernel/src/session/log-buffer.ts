/**
 * One execution's stdout or stderr, kept whole for its record (the cell
 * itself shows only a bounded part: output-capture.ts). Text is held as
 * UTF-8 chunks of ~64 KiB, so a 100 MB flood costs ~100 MB, not a string
 * rope of a million pieces, and the store hashes the chunks as they are.
 */

const CHUNK_CHARS = 64 * 1024;

export class LogBuffer {
  private readonly done: Buffer[] = [];
  private pending = "";
  private doneBytes = 0;
  /** Bytes dropped because the log reached its limit. */
  dropped = 0;

  constructor(private readonly limit: number) {}

  append(text: string): void {
    if (this.dropped > 0 || this.doneBytes + this.pending.length + text.length > this.limit) {
      this.dropped += Buffer.byteLength(text);
      return;
    }
    this.pending += text;
    if (this.pending.length >= CHUNK_CHARS) this.seal();
  }

  private seal(): void {
    if (!this.pending) return;
    const b = Buffer.from(this.pending, "utf8");
    this.done.push(b);
    this.doneBytes += b.byteLength;
    this.pending = "";
  }

  /** The log so far, as UTF-8 chunks. */
  chunks(): Buffer[] {
    this.seal();
    return this.done;
  }
}

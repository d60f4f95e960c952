/**
 * The worker's output as an append-only log in the datastore: records are
 * buffered and written as numbered chunk objects (protocol.ts) at most every
 * `flushMs`, so a chatty step costs a few writes a second, and a quiet one
 * none. The kernel tails the chunks in order.
 */
import type { StorageBackend } from "../../store/backend";
import { eventChunkKey, type RemoteRecord } from "./protocol";

/** A chunk above this many bytes is cut, so one huge print can't make one huge object. */
const CHUNK_BYTES = 1 << 20;

export class EventLogWriter {
  private buffer: string[] = [];
  private bufferBytes = 0;
  private written = 0;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private error: unknown = null;

  constructor(
    private readonly backend: StorageBackend,
    private readonly task: string,
    private readonly flushMs: number,
    private readonly attempt = 1,
  ) {}

  /** Chunks written so far (the result says how many the kernel must read). */
  get chunks(): number {
    return this.written;
  }

  push(record: RemoteRecord): void {
    const line = JSON.stringify(record) + "\n";
    this.buffer.push(line);
    this.bufferBytes += line.length;
    if (this.bufferBytes >= CHUNK_BYTES) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      // A pending flush must not keep a finished worker alive; the end flushes explicitly.
      this.timer.unref();
    }
  }

  /** Writes what is buffered; resolves once every earlier chunk is stored. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const lines = this.buffer;
    this.buffer = [];
    this.bufferBytes = 0;
    if (lines.length > 0) {
      this.chain = this.chain.then(async () => {
        try {
          const n = this.written + 1;
          if (!(await this.backend.createExclusive(eventChunkKey(this.task, n, this.attempt), Buffer.from(lines.join(""), "utf8")))) {
            throw new Error(`event chunk ${n} of task ${this.task} exists already: two workers on one task?`);
          }
          this.written = n;
        } catch (e) {
          // Output that can't be stored must not fail the step; it is said once, on the job's own stderr.
          if (this.error === null) {
            this.error = e;
            process.stderr.write(`[nbscale worker] could not write output to the datastore: ${(e as Error).message}\n`);
          }
        }
      });
    }
    return this.chain;
  }
}

/** Kernel side: reads chunk after chunk as they appear. */
export class EventLogTailer {
  private next = 1;

  constructor(
    private readonly backend: StorageBackend,
    private readonly task: string,
    readonly attempt = 1,
  ) {}

  /** Chunks read so far. */
  get read(): number {
    return this.next - 1;
  }

  /** Records of every chunk written since the last call (none when nothing new). */
  async poll(upTo = Infinity): Promise<RemoteRecord[]> {
    const out: RemoteRecord[] = [];
    while (this.next <= upTo) {
      const body = await this.backend.get(eventChunkKey(this.task, this.next, this.attempt));
      if (!body) break;
      this.next++;
      for (const line of body.toString("utf8").split("\n")) {
        if (!line) continue;
        try {
          out.push(JSON.parse(line) as RemoteRecord);
        } catch {
          // A chunk is written whole; a line that doesn't parse is not ours to show.
        }
      }
    }
    return out;
  }
}

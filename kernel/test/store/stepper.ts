/**
 * A storage backend that runs one operation at a time, when told to: the
 * seam for driving a writer (or fsck) step by step and doing something else
 * at every point between two of its operations. Only one operation is ever in
 * flight and waiting ones go in arrival order, so the same code takes the same
 * steps every time and an interleaving is fixed by its step number alone.
 */
import type {
  ChunkSource,
  HashedPutResult,
  ObjectReader,
  ObjectStat,
  PutOptions,
  PutResult,
  StorageBackend,
  TempEntry,
  WriteTap,
} from "../../src/store/backend";

export interface Step {
  op: string;
  key: string;
}

export class SteppedBackend implements StorageBackend {
  readonly location: string;
  /** The operations run since `hold`, in order. */
  readonly steps: Step[] = [];
  private readonly waiting: Array<Step & { go: () => void }> = [];
  private inFlight = false;
  private wake: (() => void) | null = null;
  /** While free, operations run at once (before `hold`, and after `release`). */
  private free = true;
  readonly putByHash?: StorageBackend["putByHash"];

  constructor(private readonly inner: StorageBackend) {
    this.location = inner.location;
    if (inner.putByHash) {
      const put = inner.putByHash.bind(inner);
      this.putByHash = (keyOf: (sha256: string) => string, chunks: ChunkSource, options?: { tap?: WriteTap }): Promise<HashedPutResult> =>
        this.run("putByHash", "(by hash)", () => put(keyOf, chunks, options));
    }
  }

  /** From now on every operation waits for `step`. */
  hold(): this {
    this.free = false;
    this.steps.length = 0;
    return this;
  }

  /**
   * Waits until the driven side is stopped before its next operation (true)
   * or `done` settled (false: it has finished).
   */
  async paused(done: Promise<unknown>): Promise<boolean> {
    let finished = false;
    const settled = done.then(
      () => (finished = true),
      () => (finished = true),
    );
    for (;;) {
      if (!this.inFlight && this.waiting.length > 0) return true;
      if (finished) return false;
      await Promise.race([settled, new Promise<void>((r) => (this.wake = r))]);
    }
  }

  /** What the driven side does next (call only while paused). */
  next(): Step {
    const w = this.waiting[0];
    return { op: w.op, key: w.key };
  }

  /** Lets the next operation run; it completes before another one starts. */
  step(): void {
    const w = this.waiting.shift();
    if (!w) throw new Error("step() while nothing waits");
    this.inFlight = true;
    w.go();
  }

  /** Stops stepping: what waits, and everything after, runs on its own. */
  release(): void {
    this.free = true;
    for (const w of this.waiting.splice(0)) w.go();
  }

  private async run<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    if (!this.free) {
      await new Promise<void>((go) => {
        this.waiting.push({ op, key, go });
        this.poke();
      });
    }
    this.steps.push({ op, key });
    try {
      return await fn();
    } finally {
      this.inFlight = false;
      this.poke();
    }
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  putIfAbsent(key: string, chunks: ChunkSource, options?: PutOptions): Promise<PutResult> {
    return this.run("putIfAbsent", key, () => this.inner.putIfAbsent(key, chunks, options));
  }
  createExclusive(key: string, data: Uint8Array): Promise<boolean> {
    return this.run("createExclusive", key, () => this.inner.createExclusive(key, data));
  }
  get(key: string): Promise<Buffer | null> {
    return this.run("get", key, () => this.inner.get(key));
  }
  openRead(key: string): Promise<ObjectReader | null> {
    return this.run("openRead", key, () => this.inner.openRead(key));
  }
  stat(key: string): Promise<ObjectStat | null> {
    return this.run("stat", key, () => this.inner.stat(key));
  }
  async *list(prefix: string): AsyncIterable<string> {
    // Whole listings are one step: a backend's listing is one request (or one directory walk).
    const keys = await this.run("list", prefix, async () => {
      const out: string[] = [];
      for await (const k of this.inner.list(prefix)) out.push(k);
      return out;
    });
    yield* keys;
  }
  remove(key: string): Promise<void> {
    return this.run("remove", key, () => this.inner.remove(key));
  }
  listTemp(): Promise<TempEntry[]> {
    return this.run("listTemp", "", () => this.inner.listTemp());
  }
  removeTemp(id: string): Promise<void> {
    return this.run("removeTemp", id, () => this.inner.removeTemp(id));
  }
  exists(): Promise<boolean> {
    return this.run("exists", "", () => this.inner.exists());
  }
}

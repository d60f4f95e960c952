import { createHash, Hash } from "node:crypto";
import { ChunkSource, ObjectReader, StorageBackend } from "./backend";
import {
  canVerify,
  CHUNK_SIZE,
  ChunkHasher,
  ChunkManifest,
  chunkRange,
  decodeManifest,
  encodeManifest,
  MANIFEST_MIN_SIZE,
  manifestKey,
} from "./chunk-manifest";
import { CorruptArtifactError } from "./errors";

const SHA_RE = /^[0-9a-f]{64}$/;
/** Slice size for pipelined read+hash: the next read runs while this one hashes. Slices end on chunk boundaries. */
const READ_SLICE = CHUNK_SIZE;
/** Positional reads in flight at once when the backend allows them (libuv has 4 threads). */
const READ_AHEAD = 4;

export const BLOB_PREFIX = "blobs/sha256/";

export function blobKey(sha256: string): string {
  if (!SHA_RE.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
  return `${BLOB_PREFIX}${sha256.slice(0, 2)}/${sha256}`;
}

/** The sha256 a blob key names, or null for a key that is not a blob. */
export function blobKeySha(key: string): string | null {
  const m = /^blobs\/sha256\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  return m && m[2].startsWith(m[1]) ? m[2] : null;
}

export function sha256Of(chunks: readonly Uint8Array[]): { sha256: string; size: number } {
  const h = createHash("sha256");
  let size = 0;
  for (const c of chunks) {
    h.update(c);
    size += c.byteLength;
  }
  return { sha256: h.digest("hex"), size };
}

export interface BlobPut {
  sha256: string;
  size: number;
  /** False when the blob existed already (dedup: no bytes were written). */
  created: boolean;
}

/**
 * Content-addressed blobs: the key is the SHA-256 of the bytes, a blob is
 * never overwritten, and every read is verified before any byte is returned.
 */
export class BlobStore {
  constructor(readonly backend: StorageBackend) {}

  /**
   * Stores bytes given as chunks (views into live memory are fine). They are
   * hashed first so an existing blob costs one hash and one stat, no write;
   * the write re-hashes and is refused if the memory changed in between.
   */
  async put(chunks: readonly Uint8Array[]): Promise<BlobPut> {
    const { sha256, size } = sha256Of(chunks);
    return this.putHashed(chunks, sha256, size);
  }

  /** `put` with the hash already computed (callers hash synchronously to snapshot live values). */
  async putHashed(chunks: readonly Uint8Array[] | ChunkSource, sha256: string, size: number): Promise<BlobPut> {
    const key = blobKey(sha256);
    if (await this.backend.stat(key)) return { sha256, size, created: false };
    const chunker = size >= MANIFEST_MIN_SIZE ? new ChunkHasher() : null;
    const r = await this.backend.putIfAbsent(key, chunks, { sha256, ...(chunker ? { tap: (b: Uint8Array) => chunker.update(b) } : {}) });
    // The backend verified that what it wrote hashes to `sha256`, in the pass the chunker saw.
    if (chunker) await this.putManifest(chunker, sha256, size);
    return { sha256, size, created: r.created };
  }

  /**
   * Stores bytes whose hash is not known yet. Where the backend can, this is
   * one pass: the bytes are hashed while they are written to a temp object,
   * which is then published under its hash (an existing blob is kept and the
   * temp dropped). Otherwise the bytes are hashed first.
   */
  async putUnhashed(chunks: readonly Uint8Array[]): Promise<BlobPut> {
    if (!this.backend.putByHash) return this.put(chunks);
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    const chunker = total >= MANIFEST_MIN_SIZE ? new ChunkHasher() : null;
    const r = await this.backend.putByHash(blobKey, chunks, chunker ? { tap: (b) => chunker.update(b) } : {});
    if (chunker) await this.putManifest(chunker, r.sha256, r.size);
    return { sha256: r.sha256, size: r.size, created: r.created };
  }

  /**
   * Stores bytes that are produced while they are written (a value's
   * serialization stream), so they are never all in memory at once. Where
   * the backend hashes while it writes, one pass; otherwise `make` is called
   * twice, to hash and then to write, and must give the same bytes both
   * times (the write refuses different ones).
   */
  async putStream(make: () => ChunkSource): Promise<BlobPut> {
    if (this.backend.putByHash) {
      const chunker = new ChunkHasher();
      const r = await this.backend.putByHash(blobKey, make(), { tap: (b) => chunker.update(b) });
      if (r.size >= MANIFEST_MIN_SIZE) await this.putManifest(chunker, r.sha256, r.size);
      return { sha256: r.sha256, size: r.size, created: r.created };
    }
    const h = createHash("sha256");
    let size = 0;
    for await (const c of make()) {
      h.update(c);
      size += c.byteLength;
    }
    return this.putHashed(make(), h.digest("hex"), size);
  }

  /**
   * Publishes the chunk manifest of a blob just written. Only when the chunker
   * saw every byte of the pass that produced the blob's hash (a write that
   * found the blob present saw none); an existing manifest is kept.
   */
  private async putManifest(chunker: ChunkHasher, sha256: string, size: number): Promise<void> {
    const m = await chunker.finish(sha256);
    if (chunker.size !== size) return;
    await this.backend.putIfAbsent(manifestKey(sha256), [encodeManifest(m)]);
  }

  /** The usable chunk manifest of a blob, or why there is none (null: never written). */
  async manifest(sha256: string, size: number): Promise<ChunkManifest | { invalid: string } | null> {
    const bytes = await this.backend.get(manifestKey(sha256));
    return bytes ? decodeManifest(bytes, sha256, size) : null;
  }

  /**
   * Whether `chunks` hold exactly the bytes of blob `sha256`, decided by the
   * blob's BLAKE3 chunk manifest: one pass at ~5 GB/s instead of SHA-256 at
   * ~1.5, so asking "did this 256 MB value change?" costs ~50 ms, not ~200.
   * BLAKE3 is collision-resistant like SHA-256, so equal chunk hashes mean
   * equal bytes. null when the blob has no usable BLAKE3 manifest (small,
   * older, or BLAKE3 unavailable): the caller compares SHA-256s.
   */
  async matches(sha256: string, size: number, chunks: readonly Uint8Array[]): Promise<boolean | null> {
    if (size < MANIFEST_MIN_SIZE || !canVerify("blake3")) return null;
    if (chunks.reduce((n, c) => n + c.byteLength, 0) !== size) return false;
    const m = await this.manifest(sha256, size);
    if (!m || "invalid" in m || m.chunkHash !== "blake3") return null;
    const h = new ChunkHasher(m.chunkSize, "blake3");
    for (const c of chunks) h.update(c);
    const got = await h.digests();
    return got.length === m.chunks.length && got.every((d, i) => d === m.chunks[i]);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.backend.stat(blobKey(sha256))) !== null;
  }

  /** Whole blob, verified. `label` names the artifact in errors (e.g. `model@3`). */
  async read(sha256: string, label: string): Promise<Buffer> {
    return this.readWith(sha256, label, async (r) => {
      const buf = Buffer.allocUnsafeSlow(r.size);
      await r.read(buf);
      return buf;
    });
  }

  /**
   * Runs `consume` over a verifying reader. `consume` may build a value from
   * the bytes, but the value is only returned after the whole blob was read
   * and verified; otherwise `CorruptArtifactError` is thrown. Large blobs
   * with an intact chunk manifest are verified chunk by chunk on several
   * threads while they are read; any other blob by its whole SHA-256.
   * `consume` must not change the bytes it was given before it returns.
   */
  async readWith<T>(sha256: string, label: string, consume: (r: VerifyingReader) => Promise<T>, options: ReadOptions = {}): Promise<T> {
    const inner = await this.backend.openRead(blobKey(sha256));
    if (!inner) throw new CorruptArtifactError(label, sha256, "is missing from the datastore");
    try {
      let manifest: ChunkManifest | null = null;
      if (inner.size >= MANIFEST_MIN_SIZE) {
        // A damaged or foreign manifest is not an error here: the whole-blob hash still decides.
        const m = await this.manifest(sha256, inner.size);
        if (m && !("invalid" in m) && canVerify(m.chunkHash)) manifest = m;
      }
      const reader = new VerifyingReader(inner, sha256, label, manifest, options.whileReading, options.onProgress);
      let result: T;
      try {
        result = await consume(reader);
      } catch (e) {
        if (e instanceof CorruptArtifactError) throw e;
        // A parse failure on bytes that don't hash right is corruption, not a bug.
        await reader.drain();
        await reader.finish();
        throw e;
      }
      await reader.drain();
      await reader.finish();
      return result;
    } finally {
      await inner.close();
    }
  }

  /**
   * Re-hashes a stored blob (fsck): its whole SHA-256 always, and its chunk
   * manifest when it has one. `blob` is null when the bytes are intact;
   * `manifest` says what is wrong with a manifest that exists.
   */
  async check(sha256: string): Promise<{ blob: string | null; manifest: { detail: string; refusesReads: boolean } | null }> {
    const inner = await this.backend.openRead(blobKey(sha256));
    if (!inner) return { blob: "is missing from the datastore", manifest: null };
    const m = await this.manifest(sha256, inner.size);
    const whole = new VerifyingReader(inner, sha256, `blob ${sha256.slice(0, 12)}`, null);
    const chunker = m && !("invalid" in m) && canVerify(m.chunkHash) ? new ChunkHasher(m.chunkSize, m.chunkHash) : null;
    if (chunker) whole.observe((b) => chunker.update(b));
    try {
      await whole.drain();
      await whole.finish();
    } catch (e) {
      if (e instanceof CorruptArtifactError) return { blob: e.detail, manifest: null };
      throw e;
    } finally {
      await inner.close();
    }
    if (!m) return { blob: null, manifest: null };
    if ("invalid" in m) return { blob: null, manifest: { detail: m.invalid, refusesReads: false } };
    if (!chunker) return { blob: null, manifest: null }; // a BLAKE3 manifest where BLAKE3 can't load: reads ignore it too
    const got = await (chunker as ChunkHasher).digests();
    const bad = got.findIndex((d, i) => d !== m.chunks[i]);
    return { blob: null, manifest: bad < 0 ? null : { detail: `disagrees with the blob's ${chunkRange(bad, m)}`, refusesReads: true } };
  }
}

export interface ReadOptions {
  /**
   * Work for this thread while the blob's bytes are read and verified
   * elsewhere (e.g. type-checking the binding a restore will make). Called
   * once, when the bulk of the reads is in flight, or at the end.
   */
  whileReading?: () => void;
  /** Bytes read and verified so far, after each slice (for a progress display). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Reads sequentially while verifying; `finish()` checks what was read.
 * Whole mode hashes every byte on this thread, one slice behind the read.
 * Chunk mode (a manifest) hands whole chunks to the thread pool as they
 * arrive and compares each with the manifest at the end.
 */
export class VerifyingReader {
  private readonly hash: Hash | null;
  private readonly chunker: ChunkHasher | null;
  private observer: ((b: Uint8Array) => Promise<void> | undefined) | null = null;
  private consumed = 0;

  constructor(
    private readonly inner: ObjectReader,
    readonly sha256: string,
    readonly label: string,
    private readonly manifest: ChunkManifest | null = null,
    private whileReading?: () => void,
    private readonly onProgress?: (done: number, total: number) => void,
  ) {
    this.hash = manifest ? null : createHash("sha256");
    this.chunker = manifest ? new ChunkHasher(manifest.chunkSize, manifest.chunkHash) : null;
  }

  get size(): number {
    return this.inner.size;
  }

  get remaining(): number {
    return this.inner.size - this.consumed;
  }

  /** Also feeds every byte read to `fn` (fsck computes chunk hashes alongside the whole hash). */
  observe(fn: (b: Uint8Array) => Promise<void> | undefined): void {
    this.observer = fn;
  }

  /** Fills `target` with the next bytes (verifying them). */
  async read(target: Uint8Array): Promise<void> {
    if (target.byteLength > this.remaining) {
      throw new CorruptArtifactError(this.label, this.sha256, `is truncated (${this.inner.size} bytes stored)`);
    }
    const slices: Array<{ bytes: Uint8Array; at: number }> = [];
    for (let off = 0; off < target.byteLength;) {
      const at = this.consumed + off;
      const end = Math.min(target.byteLength, off + READ_SLICE - (at % READ_SLICE));
      slices.push({ bytes: target.subarray(off, end), at });
      off = end;
    }
    const readAt = this.inner.readAt?.bind(this.inner);
    const depth = readAt ? READ_AHEAD : 1;
    const pending: Array<Promise<void>> = [];
    let issued = 0;
    const issue = () => {
      const s = slices[issued++];
      const p = readAt ? readAt(s.bytes, s.at) : this.inner.read(s.bytes);
      p.catch(() => undefined); // awaited below, in order; a later one may fail first
      pending.push(p);
    };
    try {
      while (issued < slices.length && issued < depth) issue();
      if (slices.length > depth) this.runWhileReading();
      for (let i = 0; i < slices.length; i++) {
        await pending[i];
        // Start the next read before verifying this slice so both run at once.
        if (issued < slices.length) issue();
        const b = slices[i].bytes;
        const tapped = this.observer?.(b);
        let queued: Promise<void> | undefined;
        if (this.chunker) queued = this.chunker.update(b);
        else this.hash?.update(b);
        await tapped;
        await queued;
        this.onProgress?.(slices[i].at + b.byteLength, this.inner.size);
      }
    } catch (e) {
      // No read may still be writing into memory the caller gets back.
      await Promise.allSettled(pending);
      throw e;
    }
    this.consumed += target.byteLength;
  }

  private runWhileReading(): void {
    const fn = this.whileReading;
    this.whileReading = undefined;
    fn?.();
  }

  /** Verifies whatever was not consumed (trailing garbage must fail the check too). */
  async drain(): Promise<void> {
    if (this.remaining === 0) return;
    // Reused across reads: chunks hashed on other threads are copied when handed over.
    const buf = Buffer.allocUnsafe(Math.min(this.remaining, READ_SLICE * READ_AHEAD));
    while (this.remaining > 0) {
      const n = Math.min(this.remaining, buf.byteLength);
      await this.read(buf.subarray(0, n));
    }
  }

  async finish(): Promise<void> {
    this.runWhileReading();
    if (this.hash) {
      const actual = this.hash.digest("hex");
      if (actual !== this.sha256) throw new CorruptArtifactError(this.label, this.sha256, `hashes to sha256:${actual}`);
      return;
    }
    const m = this.manifest as ChunkManifest;
    const got = await (this.chunker as ChunkHasher).digests();
    const bad = got.length !== m.chunks.length ? Math.min(got.length, m.chunks.length) : got.findIndex((d, i) => d !== m.chunks[i]);
    if (bad >= 0) {
      throw new CorruptArtifactError(
        this.label,
        this.sha256,
        `does not match its chunk manifest: ${chunkRange(bad, m)} hash to ${m.chunkHash}:${got[bad]}, the manifest written with the blob says ${m.chunkHash}:${m.chunks[bad]}`,
      );
    }
  }
}

import { createHash, Hash } from "node:crypto";
import { ObjectReader, StorageBackend } from "./backend";
import { CorruptArtifactError } from "./errors";

const SHA_RE = /^[0-9a-f]{64}$/;
/** Slice size for pipelined read+hash: the next read runs while this one hashes. */
const READ_SLICE = 8 << 20;

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
  async putHashed(chunks: readonly Uint8Array[], sha256: string, size: number): Promise<BlobPut> {
    const key = blobKey(sha256);
    if (await this.backend.stat(key)) return { sha256, size, created: false };
    const r = await this.backend.putIfAbsent(key, chunks, { sha256 });
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
    const r = await this.backend.putByHash(blobKey, chunks);
    return { sha256: r.sha256, size: r.size, created: r.created };
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
   * and its hash matched; otherwise `CorruptArtifactError` is thrown.
   */
  async readWith<T>(sha256: string, label: string, consume: (r: VerifyingReader) => Promise<T>): Promise<T> {
    const inner = await this.backend.openRead(blobKey(sha256));
    if (!inner) throw new CorruptArtifactError(label, sha256, "is missing from the datastore");
    const reader = new VerifyingReader(inner, sha256, label);
    try {
      let result: T;
      try {
        result = await consume(reader);
      } catch (e) {
        if (e instanceof CorruptArtifactError) throw e;
        // A parse failure on bytes that don't hash right is corruption, not a bug.
        await reader.drain();
        reader.finish();
        throw e;
      }
      await reader.drain();
      reader.finish();
      return result;
    } finally {
      await inner.close();
    }
  }

  /** Re-hashes a stored blob (fsck). Returns null when it is intact. */
  async check(sha256: string): Promise<string | null> {
    try {
      await this.readWith(sha256, `blob ${sha256.slice(0, 12)}`, async () => undefined);
      return null;
    } catch (e) {
      if (e instanceof CorruptArtifactError) return e.detail;
      throw e;
    }
  }
}

/** Reads sequentially while hashing; `finish()` checks the total. */
export class VerifyingReader {
  private readonly hash: Hash = createHash("sha256");
  private consumed = 0;

  constructor(
    private readonly inner: ObjectReader,
    readonly sha256: string,
    readonly label: string,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  get remaining(): number {
    return this.inner.size - this.consumed;
  }

  /** Fills `target` with the next bytes (hashing them). */
  async read(target: Uint8Array): Promise<void> {
    if (target.byteLength > this.remaining) {
      throw new CorruptArtifactError(this.label, this.sha256, `is truncated (${this.inner.size} bytes stored)`);
    }
    const slices: Uint8Array[] = [];
    for (let off = 0; off < target.byteLength; off += READ_SLICE) {
      slices.push(target.subarray(off, Math.min(off + READ_SLICE, target.byteLength)));
    }
    let pending = slices.length > 0 ? this.inner.read(slices[0]) : null;
    for (let i = 0; i < slices.length; i++) {
      await pending;
      // Start the next read before hashing this slice so both run at once.
      pending = i + 1 < slices.length ? this.inner.read(slices[i + 1]) : null;
      this.hash.update(slices[i]);
    }
    this.consumed += target.byteLength;
  }

  /** Hashes whatever was not consumed (trailing garbage must fail the hash too). */
  async drain(): Promise<void> {
    const buf = Buffer.allocUnsafe(Math.min(this.remaining, READ_SLICE));
    while (this.remaining > 0) {
      const n = Math.min(this.remaining, buf.byteLength);
      await this.read(buf.subarray(0, n));
    }
  }

  finish(): void {
    const actual = this.hash.digest("hex");
    if (actual !== this.sha256) {
      throw new CorruptArtifactError(this.label, this.sha256, `hashes to sha256:${actual}`);
    }
  }
}

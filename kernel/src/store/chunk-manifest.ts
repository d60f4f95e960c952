/**
 * Chunk manifests: a hash of every 8 MiB chunk of a large blob.
 *
 * A blob's id is the SHA-256 of all its bytes, and that hash is sequential:
 * one core at ~1.2–1.6 GB/s, slower than reading the same bytes from the page
 * cache. The manifest, written by the same pass that computed the blob's
 * SHA-256 from the same bytes, lets a reader verify the chunks as fast as it
 * reads them: its chunk hashes are BLAKE3 (cryptographic like SHA-256, ~5 GB/s
 * on one core with the native addon), or SHA-256 where BLAKE3 can't load, and
 * then they are spread over the thread pool. It is bound to its blob (it names
 * the blob's sha256 and size, and lives under a key derived from them) and
 * carries a checksum of its own body, so a damaged manifest is recognised and
 * ignored: the reader then verifies the whole-blob SHA-256 as before. fsck
 * always checks both.
 *
 *   blobs/manifests/<aa>/<sha256>.json
 *   {"format":2,"blob":SHA,"size":N,"chunk_size":C,"chunk_hash":"blake3"|"sha256","chunks":[HEX…],"check":SHA}
 *
 * `check` is the SHA-256 of the same JSON without `check`, keys in that order.
 * Format 1 (no `chunk_hash`, SHA-256 chunks) is still read. Stores written
 * before manifests existed simply have none; nothing changes for them, and
 * older nbscale versions ignore these keys (and manifests of a format they
 * don't know).
 */
import { createHash, webcrypto } from "node:crypto";
import { blake3, type Blake3 } from "./blake3";

export const MANIFEST_PREFIX = "blobs/manifests/";
export const CHUNK_SIZE = 8 << 20;
/** Blobs smaller than this are verified whole (a second object is not worth it). */
export const MANIFEST_MIN_SIZE = 4 * CHUNK_SIZE;
const MANIFEST_FORMAT = 2;
const SHA_RE = /^[0-9a-f]{64}$/;

export type ChunkHashName = "blake3" | "sha256";

export interface ChunkManifest {
  blob: string;
  size: number;
  chunkSize: number;
  /** The hash of each chunk (both give 64 hex digits). */
  chunkHash: ChunkHashName;
  chunks: string[];
}

/** What new manifests use here: BLAKE3 when its addon loads. */
export function preferredChunkHash(): ChunkHashName {
  return blake3() ? "blake3" : "sha256";
}

/** Whether this process can verify chunks hashed with `name`. */
export function canVerify(name: ChunkHashName): boolean {
  return name === "sha256" || blake3() !== null;
}

export function manifestKey(blobSha256: string): string {
  if (!SHA_RE.test(blobSha256)) throw new Error(`not a sha256: ${blobSha256}`);
  return `${MANIFEST_PREFIX}${blobSha256.slice(0, 2)}/${blobSha256}.json`;
}

/** The blob sha256 a manifest key names, or null for any other key. */
export function manifestKeySha(key: string): string | null {
  const m = /^blobs\/manifests\/([0-9a-f]{2})\/([0-9a-f]{64})\.json$/.exec(key);
  return m && m[2].startsWith(m[1]) ? m[2] : null;
}

function body(m: ChunkManifest, format = MANIFEST_FORMAT): string {
  if (format === 1) return JSON.stringify({ format, blob: m.blob, size: m.size, chunk_size: m.chunkSize, chunks: m.chunks });
  return JSON.stringify({ format, blob: m.blob, size: m.size, chunk_size: m.chunkSize, chunk_hash: m.chunkHash, chunks: m.chunks });
}

export function encodeManifest(m: ChunkManifest): Buffer {
  const b = body(m);
  const check = createHash("sha256").update(b, "utf8").digest("hex");
  return Buffer.from(`${b.slice(0, -1)},"check":"${check}"}\n`, "utf8");
}

/**
 * Parses a stored manifest and checks that it is intact and describes
 * `blob` of `size` bytes. Returns the manifest, or the reason it can't be used.
 */
export function decodeManifest(bytes: Uint8Array, blob: string, size: number): ChunkManifest | { invalid: string } {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")) as Record<string, unknown>;
  } catch {
    return { invalid: "is not valid JSON" };
  }
  if (typeof raw !== "object" || raw === null) return { invalid: "is not a JSON object" };
  const format = raw.format;
  if (format !== 1 && format !== 2) return { invalid: `has format ${JSON.stringify(format)}, this nbscale reads 1 and 2` };
  const chunks = raw.chunks;
  const chunkSize = raw.chunk_size;
  const chunkHash = format === 1 ? "sha256" : raw.chunk_hash;
  if (chunkHash !== "sha256" && chunkHash !== "blake3") {
    return { invalid: `names chunk hash ${JSON.stringify(chunkHash)}, this nbscale knows blake3 and sha256` };
  }
  if (
    typeof raw.blob !== "string" ||
    typeof raw.size !== "number" ||
    typeof chunkSize !== "number" ||
    !Number.isSafeInteger(chunkSize) ||
    chunkSize <= 0 ||
    !Array.isArray(chunks) ||
    !chunks.every((c) => typeof c === "string" && SHA_RE.test(c))
  ) {
    return { invalid: "is malformed" };
  }
  const m: ChunkManifest = { blob: raw.blob, size: raw.size, chunkSize, chunkHash, chunks: chunks as string[] };
  const check = createHash("sha256").update(body(m, format), "utf8").digest("hex");
  if (raw.check !== check) return { invalid: "does not match its own checksum (damaged)" };
  if (m.blob !== blob) return { invalid: `describes blob sha256:${m.blob}, not this one` };
  if (m.size !== size) return { invalid: `describes ${m.size} bytes, the blob has ${size}` };
  if (m.chunks.length !== chunkCount(size, chunkSize)) return { invalid: `lists ${m.chunks.length} chunks, ${size} bytes need ${chunkCount(size, chunkSize)}` };
  return m;
}

export function chunkCount(size: number, chunkSize: number): number {
  return Math.max(1, Math.ceil(size / chunkSize));
}

/** Byte range of chunk `i`, for messages. */
export function chunkRange(i: number, m: { size: number; chunkSize: number }): string {
  const start = i * m.chunkSize;
  const end = Math.min(start + m.chunkSize, m.size);
  return `bytes ${start}–${end - 1} (chunk ${i + 1} of ${chunkCount(m.size, m.chunkSize)})`;
}

/** SHA-256 chunks hashed on the thread pool at once (each holds a copy of its bytes). */
const MAX_IN_FLIGHT = 2;
/** Smaller whole chunks are hashed here; the hand-off costs more than it saves. */
const OFFLOAD_MIN = 1 << 20;

interface Incremental {
  update(b: Uint8Array): unknown;
  digest(format: "hex"): string;
}

/**
 * Hashes a byte stream fed in pieces of any size into fixed-size chunks
 * (boundaries are stream offsets, not piece boundaries).
 *
 * BLAKE3 chunks are hashed here, synchronously: at ~5 GB/s this thread keeps
 * up with reads and writes running on the thread pool. SHA-256 is 3–4× slower,
 * so a SHA-256 chunk that lies whole inside one piece goes to libuv's thread
 * pool (WebCrypto's digest copies the bytes when called, then hashes off this
 * thread) while fewer than MAX_IN_FLIGHT are there; otherwise it is hashed
 * here, without a copy. Feeders that cut their pieces at chunk boundaries
 * (`nextBoundary`) get nearly every chunk hashed whole.
 */
export class ChunkHasher {
  private readonly results: Array<string | Promise<string>> = [];
  private readonly inFlight = new Set<Promise<string>>();
  private current: Incremental | null = null;
  private filled = 0;
  private total = 0;
  /** The BLAKE3 implementation when chunks are BLAKE3; null: SHA-256. */
  private readonly b3: Blake3 | null;

  constructor(
    readonly chunkSize = CHUNK_SIZE,
    readonly algorithm: ChunkHashName = preferredChunkHash(),
  ) {
    this.b3 = algorithm === "blake3" ? blake3() : null;
    if (algorithm === "blake3" && !this.b3) throw new Error("BLAKE3 is not available in this process (the @napi-rs/blake-hash addon did not load)");
  }

  /** Takes the bytes; they may change once this returns. */
  update(bytes: Uint8Array): undefined {
    let off = 0;
    while (off < bytes.byteLength) {
      const n = Math.min(this.chunkSize - this.filled, bytes.byteLength - off);
      const piece = bytes.subarray(off, off + n);
      if (this.filled === 0 && n === this.chunkSize) {
        this.wholeChunk(piece);
      } else {
        (this.current ??= this.incremental()).update(piece);
        this.filled += n;
        if (this.filled === this.chunkSize) this.closeChunk();
      }
      off += n;
    }
    this.total += bytes.byteLength;
    return undefined;
  }

  private incremental(): Incremental {
    return this.b3 ? this.b3.create() : createHash("sha256");
  }

  private wholeChunk(piece: Uint8Array): void {
    if (this.b3) {
      this.results.push(this.b3.hex(piece));
    } else if (piece.byteLength >= OFFLOAD_MIN && this.inFlight.size < MAX_IN_FLIGHT) {
      const p = webcrypto.subtle.digest("SHA-256", piece).then((d) => Buffer.from(d).toString("hex"));
      this.inFlight.add(p);
      const done = () => this.inFlight.delete(p);
      p.then(done, done);
      this.results.push(p);
    } else {
      this.results.push(createHash("sha256").update(piece).digest("hex"));
    }
  }

  private closeChunk(): void {
    this.results.push((this.current ?? this.incremental()).digest("hex"));
    this.current = null;
    this.filled = 0;
  }

  /** The chunk hashes of everything fed so far (closing the last partial chunk). */
  async digests(): Promise<string[]> {
    if (this.filled > 0 || this.results.length === 0) this.closeChunk();
    return Promise.all(this.results);
  }

  get size(): number {
    return this.total;
  }

  /** The manifest of the bytes seen, for the blob they hash to. */
  async finish(blob: string): Promise<ChunkManifest> {
    return { blob, size: this.total, chunkSize: this.chunkSize, chunkHash: this.algorithm, chunks: await this.digests() };
  }
}

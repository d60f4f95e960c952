/**
 * The storage interface every datastore backend implements (a directory now,
 * S3 with the Batch backend). It is deliberately small: everything the
 * datastore needs is expressible as these operations, each with a guarantee an
 * object store can also give:
 *
 * - `putIfAbsent`: an immutable object appears whole or not at all, and an
 *   existing object is never replaced (fs: temp file + fsync + link;
 *   S3: single PUT / multipart upload with `If-None-Match: *`).
 * - `createExclusive`: same guarantee for small objects, but reports whether
 *   *this* call created it; used to allocate version numbers and to commit
 *   execution records without races between kernels.
 * - reads return exactly the stored bytes; verification against hashes is the
 *   caller's job (blobs.ts), so a backend never needs to understand content.
 *
 * Keys are `/`-separated relative paths of `[A-Za-z0-9._%~-]` segments.
 */

/** Bytes to write, as chunks so large typed arrays are never concatenated. */
export type ChunkSource = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface PutOptions {
  /**
   * Expected SHA-256 (hex) of the whole content. The backend hashes while
   * writing and refuses to publish different bytes (`ContentChangedError`):
   * callers hash live memory first, and the memory may change meanwhile.
   */
  sha256?: string;
  /**
   * Sees every byte of the content, in order, in the same pass that writes
   * (and hashes) it, so checksums derived from it describe exactly the bytes
   * stored. A returned promise is awaited before the next bytes are taken.
   */
  tap?: WriteTap;
}

export type WriteTap = (bytes: Uint8Array) => Promise<void> | undefined;

export interface PutResult {
  /** False when the object already existed (nothing was written). */
  created: boolean;
  size: number;
}

/** Result of a put whose key is derived from the content's hash. */
export interface HashedPutResult extends PutResult {
  sha256: string;
  key: string;
}

export interface ObjectStat {
  size: number;
  /** Last modification, ms since epoch (fsck's grace period uses it). */
  mtimeMs: number;
}

/** Sequential reader over one stored object. */
export interface ObjectReader {
  readonly size: number;
  /**
   * Fills `target` completely with the next bytes of the object. Throws when
   * the object ends first. Only one call may be outstanding at a time.
   */
  read(target: Uint8Array): Promise<void>;
  /**
   * Optional: fills `target` with the bytes at `position`, independently of
   * `read`; several calls may be outstanding (local files: libuv runs them
   * on its thread pool in parallel). Throws when the object ends first.
   */
  readAt?(target: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

/** A leftover of an interrupted write (temp file / incomplete upload). */
export interface TempEntry {
  /** Backend-specific identifier, passed back to `removeTemp`. */
  id: string;
  size: number;
  mtimeMs: number;
  host: string | null;
  pid: number | null;
  /**
   * True when the writer is known to be gone (same host, process not
   * running), false when known alive, null when unknown (other host).
   */
  writerGone: boolean | null;
}

export interface StorageBackend {
  /** Human-readable location, e.g. the directory path or `s3://bucket/prefix`. */
  readonly location: string;

  putIfAbsent(key: string, chunks: ChunkSource, options?: PutOptions): Promise<PutResult>;
  /**
   * Optional single-pass write for content-addressed objects: hashes while
   * writing to a temporary name, then publishes under `keyOf(sha256)` with
   * the same never-replace guarantee as `putIfAbsent`. Backends that can't
   * rename after the fact (S3 without a copy) leave it out; callers then hash
   * first and use `putIfAbsent`.
   */
  putByHash?(keyOf: (sha256: string) => string, chunks: ChunkSource, options?: { tap?: WriteTap }): Promise<HashedPutResult>;
  /** Writes small content iff `key` doesn't exist; true when this call created it. */
  createExclusive(key: string, data: Uint8Array): Promise<boolean>;

  /** Whole object, or null when absent. For small objects (records, refs). */
  get(key: string): Promise<Buffer | null>;
  openRead(key: string): Promise<ObjectReader | null>;
  stat(key: string): Promise<ObjectStat | null>;
  /**
   * Keys under `prefix` (which ends with `/` or is empty), recursively, in no
   * particular order. Temp areas are never listed.
   */
  list(prefix: string): AsyncIterable<string>;
  /**
   * Removes an object. The datastore only calls this from `fsck --clean` for
   * leftovers that were never committed; committed objects are immutable.
   */
  remove(key: string): Promise<void>;

  listTemp(): Promise<TempEntry[]>;
  removeTemp(id: string): Promise<void>;

  /** Whether the store exists at all (reading commands refuse a missing one). */
  exists(): Promise<boolean>;
}

/** Validates a key so no backend can be asked to write outside its root. */
export function checkKey(key: string): void {
  if (
    key.length === 0 ||
    key.startsWith("/") ||
    key.endsWith("/") ||
    key.split("/").some((seg) => seg === "" || seg === "." || seg === ".." || !/^[A-Za-z0-9._%~-]+$/.test(seg))
  ) {
    throw new Error(`invalid datastore key: ${JSON.stringify(key)}`);
  }
}

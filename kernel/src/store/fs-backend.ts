import { createHash, randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import { FileHandle, link, mkdir, open, readFile, readdir, rename, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { ChunkSource, checkKey, HashedPutResult, ObjectReader, ObjectStat, PutOptions, PutResult, StorageBackend, TempEntry, WriteTap } from "./backend";
import { CHUNK_SIZE } from "./chunk-manifest";
import { ContentChangedError } from "./errors";

/** Large chunks are written in slices so hashing overlaps the thread-pool write; slices are manifest chunks. */
const SLICE = CHUNK_SIZE;
/** Written bytes after which a background flush starts (large objects only). */
const FLUSH_EVERY = 32 << 20;
const TMP_DIR = "tmp";
const TMP_RE = /^nbs-(\d+)-([0-9a-f]{12})-(.+)\.tmp$/;
/** Published objects are read-only: they are immutable by contract. */
const OBJECT_MODE = 0o444;

const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, "_") || "unknown";

/**
 * A datastore in a local (or NFS-shared) directory.
 *
 * Every object is written to `tmp/nbs-<pid>-<random>-<host>.tmp`, fsynced,
 * then hard-linked to its final name: `link` fails with EEXIST instead of
 * replacing, so publication is atomic *and* exclusive. Temp names carry pid
 * and host so `fsck` can tell a dead writer's leftovers from a live write.
 */
export class FsBackend implements StorageBackend {
  readonly location: string;
  private dirsReady = false;

  constructor(readonly root: string) {
    this.location = root;
  }

  async exists(): Promise<boolean> {
    try {
      return (await stat(this.root)).isDirectory();
    } catch (e) {
      if (isCode(e, "ENOENT")) return false;
      throw e;
    }
  }

  putIfAbsent(key: string, chunks: ChunkSource, options?: PutOptions): Promise<PutResult> {
    return this.publish(key, chunks, options ?? {}, true);
  }

  async createExclusive(key: string, data: Uint8Array): Promise<boolean> {
    return (await this.publish(key, [data], {}, false)).created;
  }

  async get(key: string): Promise<Buffer | null> {
    checkKey(key);
    try {
      return await readFile(this.path(key));
    } catch (e) {
      if (isCode(e, "ENOENT") || isCode(e, "ENOTDIR")) return null;
      throw e;
    }
  }

  async openRead(key: string): Promise<ObjectReader | null> {
    checkKey(key);
    let fh: FileHandle;
    try {
      fh = await open(this.path(key), "r");
    } catch (e) {
      if (isCode(e, "ENOENT") || isCode(e, "ENOTDIR")) return null;
      throw e;
    }
    const size = (await fh.stat()).size;
    return new FsReader(fh, size, key);
  }

  async stat(key: string): Promise<ObjectStat | null> {
    checkKey(key);
    try {
      const s = await stat(this.path(key));
      return { size: s.size, mtimeMs: s.mtimeMs };
    } catch (e) {
      if (isCode(e, "ENOENT") || isCode(e, "ENOTDIR")) return null;
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    if (prefix !== "" && !prefix.endsWith("/")) throw new Error(`list prefix must end with '/': ${prefix}`);
    const start = prefix === "" ? this.root : this.path(prefix.slice(0, -1));
    const stack = [start];
    while (stack.length > 0) {
      const dir = stack.pop() as string;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isCode(e, "ENOENT") || isCode(e, "ENOTDIR")) continue;
        throw e;
      }
      for (const ent of entries) {
        const full = join(dir, ent.name);
        if (dir === this.root && ent.name === TMP_DIR) continue;
        if (ent.isDirectory()) stack.push(full);
        else if (ent.isFile()) yield relative(this.root, full).split(sep).join("/");
      }
    }
  }

  async remove(key: string): Promise<void> {
    checkKey(key);
    try {
      await unlink(this.path(key));
    } catch (e) {
      if (!isCode(e, "ENOENT")) throw e;
    }
  }

  async listTemp(): Promise<TempEntry[]> {
    let names: string[];
    try {
      names = await readdir(join(this.root, TMP_DIR));
    } catch (e) {
      if (isCode(e, "ENOENT")) return [];
      throw e;
    }
    const out: TempEntry[] = [];
    for (const name of names) {
      let s;
      try {
        s = await stat(join(this.root, TMP_DIR, name));
      } catch (e) {
        if (isCode(e, "ENOENT")) continue; // finished meanwhile
        throw e;
      }
      const m = TMP_RE.exec(name);
      const pid = m ? Number(m[1]) : null;
      const host = m ? m[3] : null;
      out.push({
        id: name,
        size: s.size,
        mtimeMs: s.mtimeMs,
        host,
        pid,
        writerGone: host === HOST && pid !== null ? !processAlive(pid) : null,
      });
    }
    return out;
  }

  async removeTemp(id: string): Promise<void> {
    if (id.includes("/") || id.includes(sep) || id === "." || id === "..") throw new Error(`invalid temp id ${id}`);
    try {
      await unlink(join(this.root, TMP_DIR, id));
    } catch (e) {
      if (!isCode(e, "ENOENT")) throw e;
    }
  }

  private path(key: string): string {
    return join(this.root, ...key.split("/"));
  }

  private async ensureRoot(): Promise<void> {
    if (this.dirsReady) return;
    await ensureDir(join(this.root, TMP_DIR));
    this.dirsReady = true;
  }

  async putByHash(keyOf: (sha256: string) => string, chunks: ChunkSource, options: { tap?: WriteTap } = {}): Promise<HashedPutResult> {
    await this.ensureRoot();
    const tmp = this.tempName();
    try {
      const { size, sha256 } = await this.writeTemp(tmp, chunks, true, options.tap);
      const key = keyOf(sha256 as string);
      checkKey(key);
      const created = await this.linkTemp(tmp, key, true);
      return { created, size, sha256: sha256 as string, key };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  private tempName(): string {
    return join(this.root, TMP_DIR, `nbs-${process.pid}-${randomBytes(6).toString("hex")}-${HOST}.tmp`);
  }

  private async publish(key: string, chunks: ChunkSource, options: PutOptions, skipIfExists: boolean): Promise<PutResult> {
    checkKey(key);
    if (skipIfExists) {
      const existing = await this.stat(key);
      if (existing) return { created: false, size: existing.size };
    }
    await this.ensureRoot();
    const tmp = this.tempName();
    try {
      const { size, sha256 } = await this.writeTemp(tmp, chunks, options.sha256 !== undefined, options.tap);
      if (options.sha256 !== undefined && sha256 !== options.sha256) throw new ContentChangedError(key, options.sha256, sha256 as string);
      return { created: await this.linkTemp(tmp, key, skipIfExists), size };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Writes and fsyncs a temp file, hashing (and tapping) the bytes as they go out when asked. */
  private async writeTemp(tmp: string, chunks: ChunkSource, hashIt: boolean, tap?: WriteTap): Promise<{ size: number; sha256: string | null }> {
    let size = 0;
    const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, OBJECT_MODE);
    // Flushing starts while later slices are still being hashed and copied,
    // so the disk works during the CPU-bound part instead of after it.
    let flushing: Promise<void> | null = null;
    let unflushed = 0;
    try {
      const hash = hashIt ? createHash("sha256") : null;
      for await (const chunk of chunks) {
        for (let off = 0; off < chunk.byteLength;) {
          // Slices end on multiples of SLICE in the object, so a tap hashing
          // fixed-size chunks gets most of them whole.
          const end = Math.min(chunk.byteLength, off + SLICE - (size % SLICE));
          const slice = chunk.subarray(off, end);
          const pending = writeAll(fh, slice);
          // Hash on the main thread while libuv writes the same slice.
          const tapped = tap?.(slice);
          hash?.update(slice);
          await pending;
          await tapped;
          size += slice.byteLength;
          off = end;
          unflushed += slice.byteLength;
          if (unflushed >= FLUSH_EVERY && !flushing) {
            unflushed = 0;
            flushing = fh.datasync().finally(() => (flushing = null));
            flushing.catch(() => undefined); // the final sync reports a failing disk
          }
        }
      }
      await flushing?.catch(() => undefined);
      await fh.sync();
      return { size, sha256: hash ? hash.digest("hex") : null };
    } finally {
      await flushing?.catch(() => undefined);
      await fh.close();
    }
  }

  /** Publishes a complete temp file under `key` without ever replacing an existing object. */
  private async linkTemp(tmp: string, key: string, contentAddressed: boolean): Promise<boolean> {
    const final = this.path(key);
    await ensureDir(dirname(final));
    let created = true;
    try {
      await link(tmp, final);
    } catch (e) {
      if (isCode(e, "EEXIST")) created = false;
      else if (contentAddressed && (isCode(e, "EPERM") || isCode(e, "ENOTSUP") || isCode(e, "ENOSYS"))) {
        // No hard links (some network filesystems): content-addressed objects
        // have identical bytes under one key, so a rename race is harmless.
        if (await this.stat(key)) created = false;
        else await rename(tmp, final);
      } else throw e;
    }
    if (created) await fsyncDir(dirname(final));
    return created;
  }
}

class FsReader implements ObjectReader {
  private position = 0;
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly key: string,
  ) {}

  async read(target: Uint8Array): Promise<void> {
    await this.readAt(target, this.position);
    this.position += target.byteLength;
  }

  async readAt(target: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < target.byteLength) {
      const { bytesRead } = await this.fh.read(target, done, target.byteLength - done, position + done);
      if (bytesRead === 0) throw new Error(`${this.key}: unexpected end of object at byte ${position + done}`);
      done += bytesRead;
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off);
    off += bytesWritten;
  }
}

/** mkdir -p that also fsyncs the parent of every directory it created. */
async function ensureDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const parents: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    parents.push(dirname(d));
    if (d === first || dirname(d) === d) break;
  }
  for (const p of parents) await fsyncDir(p);
}

async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch (e) {
    // Some platforms can't fsync a directory; the data itself is synced.
    if (!(isCode(e, "EISDIR") || isCode(e, "EINVAL") || isCode(e, "EPERM") || isCode(e, "EBADF"))) throw e;
  } finally {
    await fh?.close();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return !isCode(e, "ESRCH");
  }
}

export function isCode(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === code;
}

/**
 * Big frames between kernel and worker go through files in a private
 * directory on shared memory (/dev/shm) instead of the socket: the sender
 * writes the value's memory once, the receiver reads it once straight into
 * the memory of the value it rebuilds. Over zeromq the same bytes are copied
 * by the socket, reassembled into a message, and copied again out of it —
 * about twice as slow for large arrays (bench/step_bench.py).
 *
 * The message that refers to a spilled frame is signed (wire.ts); the file
 * lives in a 0700 directory and is created 0600.
 *
 * Files are recycled: once read, a file is renamed to `free-*` in the same
 * directory and the next big frame (either way) is written over it. Filling
 * fresh shared-memory pages costs about as much as the copy itself (the
 * kernel allocates and zeroes each page), so a 512 MiB round trip that
 * reuses one file is about twice as fast as one that makes two. At most
 * MAX_FREE files, holding at most maxFreeBytes, are kept; the directory goes
 * with the kernel.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomUUID } from "node:crypto";

/** Frames at least this big are spilled. */
export const SPILL_MIN = 1 << 20;

/** A frame that travels as a file: the message holds an empty frame in its place. */
export interface SpilledFrame {
  frame: number;
  file: string;
  length: number;
}

/**
 * A private directory for spilled frames, on shared memory when the machine
 * has it. Its name carries the kernel's pid, so directories of kernels that
 * were killed (no exit handler ran) are removed by the next one.
 */
export function makeSpillDir(): string {
  for (const base of ["/dev/shm", os.tmpdir()]) {
    try {
      removeOrphans(base);
      return fs.mkdtempSync(path.join(base, `nbscale-data-${process.pid}-`));
    } catch {
      // not available here: try the next place
    }
  }
  throw new Error("no writable directory for step data");
}

function removeOrphans(base: string): void {
  for (const name of fs.readdirSync(base)) {
    const m = /^nbscale-data-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") fs.rmSync(path.join(base, name), { recursive: true, force: true });
    }
  }
}

/**
 * Writes big frames to files in `dir`. Frames that can't be written (a full
 * disk) stay in the message: slower, never lost.
 */
export function spillFrames(frames: readonly Uint8Array[], dir: string | undefined): { frames: Uint8Array[]; spilled: SpilledFrame[] } {
  const out = [...frames];
  const spilled: SpilledFrame[] = [];
  if (!dir) return { frames: out, spilled };
  frames.forEach((f, i) => {
    if (f.byteLength < SPILL_MIN) return;
    const reused = claimFree(dir, f.byteLength);
    const file = reused ?? path.join(dir, randomUUID());
    try {
      const fd = fs.openSync(file, reused ? "r+" : "wx", 0o600);
      try {
        let off = 0;
        while (off < f.byteLength) off += fs.writeSync(fd, f, off, Math.min(f.byteLength - off, 1 << 26), off);
        // A bigger recycled file keeps only what this frame needs.
        if (reused) fs.ftruncateSync(fd, f.byteLength);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      fs.rmSync(file, { force: true });
      return;
    }
    out[i] = new Uint8Array(0);
    spilled.push({ frame: i, file, length: f.byteLength });
  });
  return { frames: out, spilled };
}

/**
 * Writes a value's serialization stream into one file in `dir` as it is
 * produced, so the worker holds one run of it at a time, never the whole.
 * Null when the stream passed `limit` bytes (the file is removed; the caller
 * sends the value another way). A stream that throws removes its file too.
 */
export function spillStream(chunks: Iterable<Uint8Array>, dir: string, limit: number): { file: string; length: number } | null {
  const file = path.join(dir, randomUUID());
  const fd = fs.openSync(file, "wx", 0o600);
  let length = 0;
  let ok = false;
  try {
    for (const c of chunks) {
      if (length + c.byteLength > limit) return null;
      let off = 0;
      while (off < c.byteLength) off += fs.writeSync(fd, c, off, c.byteLength - off, length + off);
      length += c.byteLength;
    }
    ok = true;
    return { file, length };
  } finally {
    fs.closeSync(fd);
    if (!ok) fs.rmSync(file, { force: true });
  }
}

/** A frame to read from: in memory, or a spilled file (read positionally, straight into the target). */
export type Piece = Uint8Array | { file: string; fd: number; length: number };

export function piecesOf(frames: readonly Uint8Array[], spilled: readonly SpilledFrame[], dir: string | undefined): Piece[] {
  const pieces: Piece[] = [...frames];
  for (const s of spilled) {
    // Only files in the session's own directory: a name is never a path elsewhere.
    if (!dir || path.dirname(s.file) !== dir || s.frame < 0 || s.frame >= pieces.length) throw new Error("a spilled frame outside the session directory");
    pieces[s.frame] = { file: s.file, fd: fs.openSync(s.file, "r"), length: s.length };
  }
  return pieces;
}

export function releasePieces(pieces: readonly Piece[]): void {
  for (const p of pieces) {
    if (p instanceof Uint8Array) continue;
    try {
      fs.closeSync(p.fd);
    } catch {
      // closed already
    }
    recycle(p.file);
  }
}

const FREE_PREFIX = "free-";
/** Recycled files kept for the next big frames (a step's inputs and its outputs). */
const MAX_FREE = 2;
/** Shared memory is RAM: what idle recycled files may hold at most. */
const maxFreeBytes = Math.min(2 ** 31, Math.floor(os.totalmem() / 8));

function freeFiles(dir: string): Array<{ name: string; size: number }> {
  const out: Array<{ name: string; size: number }> = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.startsWith(FREE_PREFIX)) continue;
    try {
      out.push({ name, size: fs.statSync(path.join(dir, name)).size });
    } catch {
      // claimed meanwhile
    }
  }
  return out;
}

/**
 * Takes a recycled file for a frame of `bytes`: the smallest that holds it,
 * else the biggest. Claiming is a rename, so two senders never get one file.
 */
function claimFree(dir: string, bytes: number): string | null {
  const files = freeFiles(dir).sort((a, b) => a.size - b.size);
  const fitting = files.filter((f) => f.size >= bytes);
  const order = [...fitting, ...files.filter((f) => f.size < bytes).reverse()];
  for (const f of order) {
    const claimed = path.join(dir, randomUUID());
    try {
      fs.renameSync(path.join(dir, f.name), claimed);
      return claimed;
    } catch {
      // another sender took it: try the next
    }
  }
  return null;
}

/** Keeps a read file for reuse when the pool has room, else removes it. */
function recycle(file: string): void {
  const dir = path.dirname(file);
  try {
    const size = fs.statSync(file).size;
    const free = freeFiles(dir);
    if (free.length < MAX_FREE && free.reduce((n, f) => n + f.size, 0) + size <= maxFreeBytes) {
      fs.renameSync(file, path.join(dir, `${FREE_PREFIX}${randomUUID()}`));
      return;
    }
  } catch {
    // gone or unreadable: remove below
  }
  fs.rmSync(file, { force: true });
}

export function removeSpilled(spilled: readonly SpilledFrame[]): void {
  for (const s of spilled) fs.rmSync(s.file, { force: true });
}

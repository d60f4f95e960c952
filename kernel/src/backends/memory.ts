/** Process memory as the OS sees it, and sizes as people read them. */
import { readFileSync } from "node:fs";

/** Resident set size of a process in bytes, or null when it is gone. */
export function residentBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** `3.2 GiB`, `300 MiB`: about right, for messages. */
export function humanBytes(bytes: number): string {
  if (bytes <= 0) return "0 MiB";
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(bytes >= 10 * GiB ? 0 : 1)} GiB`;
  return `${Math.max(1, Math.round(bytes / MiB))} MiB`;
}

/**
 * What to ask for after running out: twice the request or 1.5× what was
 * seen, whichever is more, rounded up to a whole GiB (or 256 MiB below 1 GiB).
 */
export function suggestMemory(requested: number, used: number): string {
  const want = Math.max(requested * 2, used * 1.5);
  if (want < GiB) return `${Math.ceil(want / (256 * MiB)) * 256}M`;
  return `${Math.ceil(want / GiB)}G`;
}

/**
 * V8's old-space limit for a request: most of it, leaving room for code,
 * stacks and the zeromq thread, so that the RSS watchdog and the heap limit
 * agree on what "out of memory" means.
 */
export function heapLimitMiB(requested: number): number {
  const mib = requested / MiB;
  // Node itself takes ~60 MiB resident before any heap: the reserve keeps the
  // heap limit the first to trip for JavaScript objects, the watchdog for buffers.
  return Math.max(32, Math.floor(mib - Math.min(512, Math.max(96, mib * 0.15))));
}

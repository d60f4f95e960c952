/**
 * Who wrote an uncommitted record, and whether that process can still commit.
 *
 * A pid alone is not an identity: pids are reused, so "pid 4711 is running"
 * says nothing about the kernel that wrote a record yesterday. On Linux the
 * identity therefore also carries the process's start time (clock ticks since
 * boot, /proc/PID/stat field 22) and the boot id: the same pid with the same
 * start on the same boot is the same process. Where /proc is missing the start
 * is null and a running pid counts as alive (keeping a leftover is the safe
 * mistake).
 *
 * Liveness can only be known on the writer's own host. A record written from
 * another host (a Batch container on S3, another machine on NFS) is "unknown";
 * fsck fences such an execution before removing its records instead of
 * trusting a clock (see ExecutionStore.abandon).
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

export interface WriterIdentity {
  host: string;
  pid: number;
  /** `BOOT_ID:START_TICKS`, or null where the platform doesn't say. */
  start: string | null;
}

export type WriterState = "alive" | "gone" | "unknown";

const HOST = hostname() || "unknown";

function bootId(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
  } catch {
    return null;
  }
}

/** Start ticks of `pid` (null: no such process, or no /proc). */
function startTicks(pid: number | "self"): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null; // field 22 overall
  } catch {
    return null;
  }
}

let self: WriterIdentity | null = null;

export function thisWriter(): WriterIdentity {
  if (!self) {
    const boot = bootId();
    const ticks = startTicks("self");
    self = { host: HOST, pid: process.pid, start: boot && ticks ? `${boot}:${ticks}` : null };
  }
  return self;
}

function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code !== "ESRCH";
  }
}

/** Whether the process that wrote a record is still running, as far as this host can tell. */
export function writerState(w: WriterIdentity | null | undefined): WriterState {
  if (!w || typeof w.host !== "string" || typeof w.pid !== "number") return "unknown";
  const me = thisWriter();
  if (w.host !== me.host) return "unknown";
  if (w.start && me.start) {
    const [boot, ticks] = w.start.split(":");
    // Same name, other boot: a reboot (gone) or another machine of that name (unknown); only the latter can still commit.
    if (boot !== me.start.split(":")[0]) return "unknown";
    const now = startTicks(w.pid);
    if (now === null) return pidRunning(w.pid) ? "unknown" : "gone";
    return now === ticks ? "alive" : "gone";
  }
  return pidRunning(w.pid) ? "alive" : "gone";
}

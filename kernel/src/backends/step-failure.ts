/**
 * How a step failed, as facts: what every backend reports when a step ends
 * without its values, what the runtime's retry policy decides on
 * (step/retry.ts), and what the session (a cell's error) and the flow runner
 * (a run's step record) render. A failure is worded once, here, in terms
 * that hold for a cell and a flow step alike; what to change is kept as data
 * (`fix`), because a cell changes its `%%step` line and a flow its `step()`
 * settings.
 */
import { formatDuration } from "../magics/units";
import { humanBytes, heapLimitMiB, suggestMemory } from "./memory";

export type FailureKind =
  /** The step's own code threw: its result, not the machinery's; never retried. */
  | "exception"
  | "out-of-memory"
  | "timeout"
  /** The worker process or job died under the step (a signal, an exit, a lost job). */
  | "worker-died"
  /** The machine it ran on failed (Slurm NODE_FAIL, BOOT_FAIL). */
  | "node-failed"
  | "preempted"
  /** Stopped from outside nbscale (scancel, an administrator). */
  | "cancelled"
  /** Stopped by the user's interrupt (Ctrl-C, the stop button). */
  | "interrupted"
  /** Never started: a request, a setting or an input refused before anything ran. */
  | "not-started";

/** What the user should change; each surface says it in its own terms. */
export type Fix =
  /** Ask for this much memory (`--memory 2G`, `memory: "2G"`). */
  | { kind: "memory"; size: string }
  /** Give it a (longer) time limit. */
  | { kind: "more-time" }
  /** Nothing to change: running it again may well work. */
  | { kind: "run-again" };

export interface StepFailure {
  kind: FailureKind;
  /** A stable name for the failure (`StepOutOfMemory`, `WorkerDied`, `SlurmSubmitError`): a cell's `ename`, a record's `name`. */
  name: string;
  /** One sentence with the cause in numbers, the same for a cell and a flow step (no colours, no advice: see `fix`). */
  message: string;
  /** Facts under the message: where it ran, the scheduler's reasons, the last lines of output. */
  details: string[];
  fix?: Fix;
  /** Out of memory: bytes asked for (undefined: no --memory) and the most seen used. */
  memory?: { requestedBytes?: number; usedBytes: number };
  /** The job the step ran as, when one was submitted. */
  job?: string;
}

export function failure(kind: FailureKind, name: string, message: string, details: string[] = [], extra: Partial<StepFailure> = {}): StepFailure {
  return { kind, name, message, details, ...extra };
}

/** A step that never started: a refused request or setting, named, with how to fix it in `details`. */
export function notStarted(name: string, message: string, details: string[] = []): StepFailure {
  return failure("not-started", name, message, details);
}

/** V8's default heap limit on 64-bit Linux, for messages about steps without `--memory`. */
export const DEFAULT_HEAP = 4 * 2 ** 30;

export interface OutOfMemoryFacts {
  step: string;
  /** Bytes asked for; undefined: no --memory (V8's default heap applied). */
  requested?: number;
  /** The most seen used (a sampler's peak, a scheduler's kill line, a container's limit). */
  used: number;
  /** How it was stopped, as a clause: `the memory watchdog stopped its worker`. */
  how: string;
  /** The heap limit was what tripped: it used at least that much, whatever was sampled. */
  heapLimit?: boolean;
  job?: string;
}

/** One out-of-memory message and one piece of advice, for every target. */
export function outOfMemory(f: OutOfMemoryFacts): StepFailure {
  const floor = f.heapLimit ? (f.requested !== undefined ? heapLimitMiB(f.requested) * 2 ** 20 : DEFAULT_HEAP) : 0;
  const used = Math.max(f.used, floor);
  const base = f.requested ?? DEFAULT_HEAP;
  const message =
    f.requested !== undefined
      ? `step \`${f.step}\` ran out of memory: it used about ${humanBytes(used)} of the ${humanBytes(f.requested)} it asked for`
      : `step \`${f.step}\` ran out of memory: it used about ${humanBytes(used)} with no --memory given (V8's default heap is about 4 GiB)`;
  return failure("out-of-memory", "StepOutOfMemory", message, [`(${f.how})`], {
    fix: { kind: "memory", size: suggestMemory(base, used) },
    memory: { requestedBytes: f.requested, usedBytes: used },
    job: f.job,
  });
}

/** A time limit the step asked for and did not finish within; `how` says who stopped it. */
export function timedOut(step: string, timeoutMs: number | undefined, how: string, job?: string): StepFailure {
  return failure("timeout", "StepTimeout", `step \`${step}\` did not finish within its timeout of ${formatDuration(timeoutMs ?? 0)}${how}`, [], { job });
}

export function interrupted(step: string, how = ""): StepFailure {
  return failure("interrupted", "KeyboardInterrupt", `step \`${step}\` was interrupted${how}`);
}

/** How a local worker process ended without reporting back (backends/local-pool.ts's `Death`). */
export type WorkerEnding =
  | { death: "oom" | "oom-heap"; peakRss: number }
  | { death: "timeout" }
  | { death: "interrupted" }
  | { death: "killed"; pid: number; signal: string | null; code: number | null; stderr: string };

/** A local worker's (or the kernel's own, `--on kernel`) ending without a result. */
export function workerEnded(step: string, e: WorkerEnding, memory: number | undefined, timeoutMs: number | undefined): StepFailure {
  switch (e.death) {
    case "oom":
    case "oom-heap":
      return outOfMemory({
        step,
        requested: memory,
        used: e.peakRss,
        heapLimit: e.death === "oom-heap",
        how: e.death === "oom" ? "the memory watchdog stopped its worker" : "its JavaScript heap hit the limit",
      });
    case "timeout":
      return timedOut(step, timeoutMs, "; its worker was stopped");
    case "interrupted":
      return interrupted(step);
    case "killed": {
      const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
      const outside = e.signal === "SIGKILL" ? " (from outside nbscale: e.g. `kill -9` or the OS)" : "";
      const tail = e.signal ? [] : e.stderr.trim().split("\n").filter(Boolean).slice(-5);
      return failure(
        "worker-died",
        "WorkerDied",
        `step \`${step}\`: its worker (pid ${e.pid}) ${how}${outside} while the step ran; the next step runs on a fresh worker`,
        tail,
      );
    }
  }
}

/** A few words for a retry notice. */
export function shortReason(f: StepFailure): string {
  const first = f.message.replace(/^step `[^`]*`:? ?/, "").split("; ")[0];
  return first.length > 160 ? `${first.slice(0, 157)}...` : first;
}

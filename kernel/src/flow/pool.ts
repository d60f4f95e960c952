/**
 * Runs flow step tasks on warm worker processes (worker.ts), kept for the
 * length of one `nbscale run`: a worker is started while the runner loads
 * the flow, and each finished step hands its worker to the next one.
 *
 * Why not the kernel's pool (backends/local-pool.ts, worker/main.ts): a
 * worker there talks zeromq from a socket thread; starting one (node, the
 * thread, zeromq, the handshake) took ~245 ms here against ~120 ms for this
 * one, and a 10-step `nbscale run` has to finish in about a quarter second to
 * be 10x cheaper than Metaflow's. So flow steps keep their own worker, on
 * node's IPC channel, with the same rules as the kernel's pool:
 *
 * - memory: a step with `memory` runs on a worker whose V8 heap limit is
 *   the kernel pool's for that request (backends/memory.ts heapLimitMiB:
 *   the request minus a reserve) and an RSS watchdog stops it above the
 *   request; workers are reused only by steps asking for the same memory;
 * - timeout, death: the worker is killed and not reused (the next step
 *   gets a new one); Ctrl-C kills every worker and no step starts after it;
 *   out of memory is the watchdog's kill or V8's own message ("heap out of
 *   memory"); any other death (a SIGKILL from outside, the OS's OOM killer
 *   for a step without `memory`) is a worker death, as for a cell;
 * - at most `maxWorkers` processes live at once: an idle worker of another
 *   heap size is stopped to make room.
 */
import { fork, type ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { heapLimitMiB, residentBytes } from "../backends/memory";
import type { WorkerEnding } from "../backends/step-failure";
import { logLimit } from "../worker/log-limit";
import { formatMB } from "../magics/units";
import type { WorkerOutput, WorkerReply, WorkerRequest, WorkerTask } from "./worker";

export interface LaunchOptions {
  memoryBytes: number | null;
  timeoutMs: number | null;
  env: Record<string, string>;
  /** Every chunk of the step's stdout and stderr, as it arrives. */
  onOutput?: (text: string) => void;
  /** Scheduler jobs only: the job's state whenever it changes (`Slurm job 12: RUNNING on n1`). */
  onJobState?: (state: JobState) => void;
}

export interface JobState {
  phase: "submitted" | "queued" | "running" | "ended";
  /** `Slurm job 12: PENDING (Priority)` */
  text: string;
}

export interface TaskOutcome {
  reply: WorkerReply | null;
  /** stdout and stderr interleaved, as they arrived. */
  log: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** How the worker ended without a reply (null: it replied, or the launcher explains it in its own failure). */
  ending: WorkerEnding["death"] | null;
  /** Highest RSS seen while the task ran, bytes (0: not sampled). */
  peakRss: number;
  pid: number | null;
}

export interface StepLauncher {
  run(task: WorkerTask, options: LaunchOptions): Promise<TaskOutcome>;
  /** Stops every running task (Ctrl-C). */
  stopAll(): void;
  /** Stops idle workers too: the run is over. */
  close?(): void;
  /** At most this many worker processes alive at once (`--max-workers`). */
  limit?(maxWorkers: number): void;
}

/** A step's log as kept for its record and `nbscale logs`: the same limit as a cell step's (NBSCALE_LOG_BYTES). */
const LOG_CAP = logLimit(process.env);
/** How often the RSS watchdog looks, as the kernel's pool. */
const WATCHDOG_MS = 100;

interface Running {
  log: string;
  reply: WorkerReply | null;
  timedOut: boolean;
  /** Stopped by the RSS watchdog. */
  overMemory: boolean;
  peakRss: number;
  onOutput?: (text: string) => void;
  settle(outcome: TaskOutcome): void;
}

interface FlowWorker {
  child: ChildProcess;
  /** --max-old-space-size in MiB; null: V8's default. */
  heapMiB: number | null;
  task: Running | null;
  gone: boolean;
  /** Killed by stopAll (Ctrl-C): its step failed, but not for lack of memory. */
  interrupted: boolean;
}

export interface ProcessLauncherOptions {
  /** Processes alive at once (default: CPU count). */
  maxWorkers?: number;
  /** Workers with the default heap to start right away, before any task asks. */
  warm?: number;
}

export function heapMiBFor(memoryBytes: number | null): number | null {
  return memoryBytes === null ? null : heapLimitMiB(memoryBytes);
}

export class ProcessLauncher implements StepLauncher {
  private readonly workers = new Set<FlowWorker>();
  private maxWorkers: number;
  private closed = false;
  /** After Ctrl-C no task starts: the run is winding down. */
  private stopped = false;

  constructor(options: ProcessLauncherOptions = {}) {
    this.maxWorkers = Math.max(1, options.maxWorkers ?? availableParallelism());
    for (let i = 0; i < Math.min(options.warm ?? 0, this.maxWorkers); i++) this.spawn(null);
  }

  run(task: WorkerTask, options: LaunchOptions): Promise<TaskOutcome> {
    if (this.stopped) {
      return Promise.resolve({ reply: null, log: "", exitCode: null, signal: "SIGINT", ending: "interrupted", peakRss: 0, pid: null });
    }
    const w = this.acquire(heapMiBFor(options.memoryBytes));
    const env = { ...options.env, NBSCALE_FLOW_STEP: task.step, NBSCALE_RUN: task.run };
    return new Promise<TaskOutcome>((resolve) => {
      const running: Running = {
        log: "",
        reply: null,
        timedOut: false,
        overMemory: false,
        peakRss: 0,
        onOutput: options.onOutput,
        settle: (outcome) => {
          if (timer) clearTimeout(timer);
          clearInterval(watchdog);
          resolve(outcome);
        },
      };
      // The same guard as a cell step's worker: above its request, the step is stopped and said to be out of memory.
      const watchdog = setInterval(() => {
        const rss = w.child.pid !== undefined ? residentBytes(w.child.pid) : null;
        if (rss === null) return;
        if (rss > running.peakRss) running.peakRss = rss;
        if (options.memoryBytes !== null && rss > options.memoryBytes && !running.overMemory) {
          running.overMemory = true;
          this.kill(w);
        }
      }, WATCHDOG_MS);
      const timer =
        options.timeoutMs !== null
          ? setTimeout(() => {
              running.timedOut = true;
              this.kill(w);
            }, options.timeoutMs)
          : null;
      w.task = running;
      w.child.send({ task, env } satisfies WorkerRequest, (e) => {
        if (e) this.kill(w); // the worker is gone; its exit settles the task
      });
    });
  }

  stopAll(): void {
    this.stopped = true;
    for (const w of this.workers) {
      w.interrupted = true;
      this.kill(w);
    }
  }

  limit(maxWorkers: number): void {
    this.maxWorkers = Math.max(1, maxWorkers);
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) if (!w.task) this.kill(w);
  }

  /** An idle worker with the same heap limit, else a new one (making room if needed). */
  private acquire(heapMiB: number | null): FlowWorker {
    for (const w of this.workers) if (!w.task && !w.gone && w.heapMiB === heapMiB) return w;
    const live = [...this.workers].filter((w) => !w.gone);
    if (live.length >= this.maxWorkers) {
      const spare = live.find((w) => !w.task);
      if (spare) this.kill(spare);
    }
    return this.spawn(heapMiB);
  }

  private spawn(heapMiB: number | null): FlowWorker {
    const execArgv: string[] = [];
    if (heapMiB !== null) execArgv.push(`--max-old-space-size=${heapMiB}`);
    const child = fork(join(__dirname, "worker.js"), [], {
      execArgv,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "advanced",
    });
    const w: FlowWorker = { child, heapMiB, task: null, gone: false, interrupted: false };
    this.workers.add(w);
    // Output written below JavaScript (V8's out-of-memory report, child processes).
    const append = (chunk: Buffer): void => {
      if (w.task) this.append(w.task, chunk.toString("utf8"));
    };
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
    child.on("message", (m: WorkerReply | WorkerOutput) => {
      const t = w.task;
      if (!t) return;
      if (m.type === "output") return this.append(t, m.text);
      t.reply = m;
      w.task = null;
      t.settle({ reply: m, log: t.log, exitCode: null, signal: null, ending: null, peakRss: t.peakRss, pid: child.pid ?? null });
      if (this.closed) this.kill(w);
    });
    child.on("error", () => this.kill(w));
    // "close", not "exit": the pipes are drained, so V8's last words are in the log.
    child.on("close", (code, signal) => {
      w.gone = true;
      this.workers.delete(w);
      const t = w.task;
      if (!t) return;
      w.task = null;
      const heap = /heap out of memory|Reached heap limit|Allocation failed - JavaScript heap/i.test(t.log);
      const ending: WorkerEnding["death"] = w.interrupted ? "interrupted" : t.timedOut ? "timeout" : t.overMemory ? "oom" : heap ? "oom-heap" : "killed";
      // An interrupted step reads as one (the SIGKILL that ended it is ours).
      t.settle({ reply: t.reply, log: t.log, exitCode: code, signal: w.interrupted ? "SIGINT" : signal, ending, peakRss: t.peakRss, pid: child.pid ?? null });
    });
    return w;
  }

  private append(t: Running, text: string): void {
    if (t.log.length < LOG_CAP) {
      t.log += text;
      if (t.log.length >= LOG_CAP) t.log += `\n[nbscale: the rest of the output is not kept: over ${formatMB(LOG_CAP)} (NBSCALE_LOG_BYTES)]\n`;
    }
    t.onOutput?.(text);
  }

  private kill(w: FlowWorker): void {
    if (w.gone) return;
    w.gone = true; // not handed out again, even before its exit arrives
    w.child.kill("SIGKILL");
  }
}

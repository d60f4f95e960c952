/**
 * Runs one step task in a fresh `node` child process (the adapter until the
 * shared worker pool of kernel/src/backends/local can take flow steps: only
 * this file would change). A process per task costs ~0.2 s, but gives each
 * step its own heap limit (`memory`), a clean global state, and a kill that
 * can't hurt other steps (`timeout`).
 *
 * Out of memory is recognised from V8's own message ("heap out of memory")
 * or a SIGKILL/SIGABRT death (the kernel's OOM killer, V8's abort).
 */
import { fork } from "node:child_process";
import { join } from "node:path";
import type { WorkerReply, WorkerTask } from "./worker";

export interface LaunchOptions {
  memoryBytes: number | null;
  timeoutMs: number | null;
  env: Record<string, string>;
  /** Every chunk of the step's stdout and stderr, as it arrives. */
  onOutput?: (text: string) => void;
}

export interface TaskOutcome {
  reply: WorkerReply | null;
  /** stdout and stderr interleaved, as they arrived. */
  log: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  oom: boolean;
  timedOut: boolean;
  pid: number | null;
}

export interface StepLauncher {
  run(task: WorkerTask, options: LaunchOptions): Promise<TaskOutcome>;
  /** Stops every running task (Ctrl-C). */
  stopAll(): void;
}

const LOG_CAP = 16 << 20;

export class ProcessLauncher implements StepLauncher {
  private readonly children = new Set<import("node:child_process").ChildProcess>();

  run(task: WorkerTask, options: LaunchOptions): Promise<TaskOutcome> {
    const execArgv = ["--enable-source-maps"];
    if (options.memoryBytes !== null) execArgv.push(`--max-old-space-size=${Math.max(16, Math.floor(options.memoryBytes / 2 ** 20))}`);
    const child = fork(join(__dirname, "worker.js"), [], {
      execArgv,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: { ...process.env, ...options.env, NBSCALE_FLOW_STEP: task.step, NBSCALE_RUN: task.run },
      serialization: "advanced",
    });
    this.children.add(child);
    let log = "";
    let reply: WorkerReply | null = null;
    let timedOut = false;
    const append = (chunk: Buffer): void => {
      const text = chunk.toString("utf8");
      if (log.length < LOG_CAP) log += text;
      options.onOutput?.(text);
    };
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
    child.on("message", (m) => (reply = m as WorkerReply));
    const timer =
      options.timeoutMs !== null
        ? setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, options.timeoutMs)
        : null;
    child.send(task);
    return new Promise((resolve) => {
      child.on("close", (code, signal) => {
        if (timer) clearTimeout(timer);
        this.children.delete(child);
        const oom =
          !timedOut &&
          (/heap out of memory|Reached heap limit|Allocation failed - JavaScript heap/i.test(log) ||
            (reply === null && (signal === "SIGKILL" || signal === "SIGABRT" || code === 134 || code === 137)));
        resolve({ reply, log, exitCode: code, signal, oom, timedOut, pid: child.pid ?? null });
      });
    });
  }

  stopAll(): void {
    for (const c of this.children) c.kill("SIGKILL");
  }
}

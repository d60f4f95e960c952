/**
 * The local backend: a pool of warm `nbscale worker` processes on this
 * machine, talking to the kernel over one zeromq ROUTER socket on an IPC
 * path in a private (0700) directory, every message signed with a key made
 * for this kernel session (worker/wire.ts).
 *
 * Memory is real: a worker for `--memory M` runs with a V8 heap limit just
 * under M and an RSS watchdog that kills it above M; the pool starts a step
 * only while the requests of running steps fit in the machine's memory.
 * Workers are reused while their memory limit matches and they stay
 * healthy; a worker whose step failed, timed out, or was interrupted is
 * killed and replaced.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zmq from "zeromq";
import type { EncodedValues } from "../worker/codec";
import type { LazyOutputs, OutputStub, RemoteError, StepEvent, StepProgram, TaskHeader, ValueSpec, WorkerHeader } from "../worker/events";
import { newSessionKey, SendQueue, WireChannel } from "../worker/wire";
import { heapLimitMiB, residentBytes } from "./memory";
import { makeSpillDir, piecesOf, removeSpilled, spillFrames, type Piece } from "../worker/spill";

export interface PoolOptions {
  cwd: string;
  packageDir: string;
  log(text: string): void;
  /** Idle workers without a memory limit kept ready (NBSCALE_WARM_WORKERS, default 1). */
  warm?: number;
  /** Idle workers kept in all (others are stopped when released). */
  maxIdle?: number;
  /** Memory the pool may hand out; the machine's by default. */
  totalMemory?: number;
  /** How often the RSS watchdog looks (ms). */
  watchdogMs?: number;
}

export type WorkerState = "starting" | "idle" | "busy" | "stopping";

/** How a step's worker ended when it did not report back. */
export type Death = "oom" | "oom-heap" | "timeout" | "interrupted" | "killed";

export interface WorkerInfo {
  id: string;
  pid: number;
  /** Requested memory in bytes; undefined = no limit (V8's default heap). */
  memory?: number;
  state: WorkerState;
  step?: string;
  steps: number;
  rss: number | null;
  startedAt: number;
}

export interface TaskRequest {
  step: string;
  attempt: number;
  memory?: number;
  env: Record<string, string>;
  timeoutMs?: number;
  program: StepProgram;
  inputs: Pick<EncodedValues, "specs" | "frames">;
  /** Keep outputs over a size in the datastore (step/lazy.ts). */
  lazy?: LazyOutputs;
  onEvent(event: StepEvent): void;
}

interface TaskCommon {
  worker: { id: string; pid: number };
  /** Highest RSS seen while the step ran, bytes. */
  peakRss: number;
  /** Attempts the backend itself made (AWS Batch's retryStrategy); absent: one. */
  attempts?: number;
}

export type TaskResult = TaskCommon &
  /** `pieces`: the outputs' frames; the caller releases them (releasePieces) once decoded. */
  (
    | { status: "done"; outputs: ValueSpec[]; pieces: Piece[]; stubs: OutputStub[] }
    | { status: "failed"; error: RemoteError }
    | { status: "died"; death: Death; signal: string | null; code: number | null; stderr: string }
  );

interface RunningTask {
  id: string;
  finish(result: TaskResult): void;
  onEvent(event: StepEvent): void;
}

interface PoolWorker {
  id: string;
  proc: ChildProcess;
  pid: number;
  memory?: number;
  state: WorkerState;
  ready: Promise<void>;
  onReady(): void;
  onStartFailure(e: Error): void;
  step?: string;
  task?: RunningTask;
  startedAt: number;
  steps: number;
  stderrTail: string;
  peakRss: number;
  death?: Death;
  channel: WireChannel;
}

export class WorkerStartError extends Error {}

/**
 * Signals one worker. A worker that never got a pid (spawn failed) is
 * skipped: `kill(-1)` or `kill(0)` would hit every process we may signal.
 */
function signalWorker(w: PoolWorker, signal: NodeJS.Signals): void {
  if (!Number.isInteger(w.pid) || w.pid <= 1) return;
  try {
    process.kill(w.pid, signal);
  } catch {
    // already gone: its exit handler reports it
  }
}

export class LocalPool {
  readonly totalMemory: number;
  private readonly key = newSessionKey();
  private readonly dir: string;
  /** Where workers connect (ipc, in a 0700 directory). */
  readonly endpoint: string;
  private readonly router = new zmq.Router({ linger: 0, mandatory: true });
  private readonly sendQueue = new SendQueue((parts) => this.router.send(parts));
  private readonly workers = new Map<string, PoolWorker>();
  private readonly waiters: Array<() => void> = [];
  private readonly bin: string;
  /** Big frames travel as files here (worker/spill.ts); undefined: all go through the socket. */
  private readonly spillDir: string | undefined;
  private started: Promise<void> | null = null;
  private counter = 0;
  private closed = false;

  constructor(private readonly options: PoolOptions) {
    this.totalMemory = options.totalMemory ?? os.totalmem();
    // mkdtemp makes the directory 0700: other users can't reach the socket.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-"));
    this.endpoint = `ipc://${path.join(this.dir, "workers.sock")}`;
    this.bin = path.join(options.packageDir, "bin", "nbscale.js");
    try {
      this.spillDir = makeSpillDir();
    } catch {
      this.spillDir = undefined;
    }
    process.on("exit", () => {
      this.killAll();
      this.removeDirs();
    });
  }

  /** Binds the socket and warms the pool; idempotent. */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.router.bind(this.endpoint);
      void this.receiveLoop();
      this.keepWarm();
    })();
    return this.started;
  }

  list(): WorkerInfo[] {
    return [...this.workers.values()].map((w) => ({
      id: w.id,
      pid: w.pid,
      memory: w.memory,
      state: w.state,
      step: w.step,
      steps: w.steps,
      rss: residentBytes(w.pid),
      startedAt: w.startedAt,
    }));
  }

  /** Bytes requested by steps that hold a worker now. */
  reserved(): number {
    let n = 0;
    for (const w of this.workers.values()) if (w.state === "busy") n += w.memory ?? 0;
    return n;
  }

  /** Runs a step on a worker. Never rejects for the step's own reasons: see TaskResult. */
  async run(req: TaskRequest): Promise<TaskResult> {
    const epoch = this.cancelEpoch;
    await this.start();
    const w = await this.acquire(req.memory);
    if (this.cancelEpoch !== epoch) {
      // Interrupted while this task waited for its worker (a cold pool still starting one):
      // the worker goes back to the pool unused and the task ends as interrupted ones do.
      this.release(w, true);
      return { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker: { id: w.id, pid: w.pid }, peakRss: 0 };
    }
    const id = randomUUID();
    const sent = spillFrames(req.inputs.frames, this.spillDir);
    return await new Promise<TaskResult>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const watchdog = setInterval(() => this.watch(w), this.options.watchdogMs ?? 100);
      const task: RunningTask = {
        id,
        onEvent: req.onEvent,
        finish: (result) => {
          if (w.task !== task) return;
          clearInterval(watchdog);
          if (timer) clearTimeout(timer);
          w.task = undefined;
          removeSpilled(sent.spilled); // what the worker did not read (it died, or was stopped)
          this.release(w, result.status === "done");
          resolve(result);
        },
      };
      w.task = task;
      w.step = req.step;
      w.peakRss = residentBytes(w.pid) ?? 0;
      w.death = undefined;
      if (req.timeoutMs !== undefined) timer = setTimeout(() => this.kill(w, "timeout"), req.timeoutMs);
      const header: TaskHeader = {
        type: "task",
        task: id,
        step: req.step,
        attempt: req.attempt,
        env: req.env,
        program: req.program,
        inputs: req.inputs.specs,
        spilled: sent.spilled,
        spillDir: this.spillDir,
        lazy: req.lazy,
      };
      this.sendQueue.push([Buffer.from(w.id), ...w.channel.encode({ header, frames: sent.frames })]).catch((e) => {
        this.options.log(`[nbscale] could not send a step to worker ${w.id}: ${(e as Error).message}\n`);
        this.kill(w, "killed");
      });
    });
  }

  /** Stops every running step now (interrupt): their workers are killed and replaced. */
  cancelRunning(): number {
    this.cancelEpoch++;
    let n = 0;
    for (const w of this.workers.values()) {
      if (w.task) {
        this.kill(w, "interrupted");
        n++;
      }
    }
    return n;
  }

  /** Kills every worker and removes the socket (kernel shutdown). */
  close(): void {
    this.closed = true;
    this.killAll();
    this.router.close();
    this.removeDirs();
  }

  // --- internals ---

  private fits(memory: number | undefined): boolean {
    return this.reserved() + (memory ?? 0) <= this.totalMemory;
  }

  /** Bumped by each interrupt: tasks that were still waiting for a worker then don't run. */
  private cancelEpoch = 0;

  private async acquire(memory: number | undefined): Promise<PoolWorker> {
    while (!this.fits(memory)) await new Promise<void>((r) => this.waiters.push(r));
    let w = [...this.workers.values()].find((x) => x.state === "idle" && x.memory === memory);
    if (!w) {
      // A starting worker of the right size is as good as an idle one.
      w = [...this.workers.values()].find((x) => x.state === "starting" && x.memory === memory && !x.task && !x.step) ?? this.spawn(memory);
    }
    w.state = "busy";
    w.step = "…";
    this.keepWarm();
    try {
      await w.ready;
    } catch (e) {
      this.workers.delete(w.id);
      throw e;
    }
    return w;
  }

  private release(w: PoolWorker, healthy: boolean): void {
    w.step = undefined;
    if (!healthy || this.closed) {
      this.kill(w, w.death ?? "killed");
    } else {
      w.state = "idle";
      w.steps++;
      const idle = [...this.workers.values()].filter((x) => x.state === "idle").sort((a, b) => a.startedAt - b.startedAt);
      const max = this.options.maxIdle ?? 2;
      for (const x of idle.slice(0, Math.max(0, idle.length - max))) if (x !== w || x.memory !== undefined) this.stop(x);
    }
    this.keepWarm();
    for (const wake of this.waiters.splice(0)) wake();
  }

  private keepWarm(): void {
    if (this.closed || this.started === null) return;
    const warm = this.options.warm ?? 1;
    const ready = [...this.workers.values()].filter((x) => x.memory === undefined && (x.state === "idle" || (x.state === "starting" && !x.step)));
    for (let i = ready.length; i < warm; i++) this.spawn(undefined);
  }

  private spawn(memory: number | undefined): PoolWorker {
    const id = `w${++this.counter}-${process.pid}`;
    const args = [
      ...(memory !== undefined ? [`--max-old-space-size=${heapLimitMiB(memory)}`] : []),
      this.bin,
      "worker",
      "--connect",
      this.endpoint,
      "--id",
      id,
    ];
    const proc = spawn(process.execPath, args, {
      cwd: this.options.cwd,
      stdio: ["pipe", "ignore", "pipe"],
      // Own process group: a Ctrl-C aimed at the kernel's group must not kill workers mid-step.
      detached: true,
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    let onReady!: () => void;
    let onStartFailure!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      onReady = res;
      onStartFailure = rej;
    });
    ready.catch(() => undefined);
    const w: PoolWorker = {
      id,
      proc,
      pid: proc.pid ?? -1,
      memory,
      state: "starting",
      ready,
      onReady,
      onStartFailure,
      startedAt: Date.now(),
      steps: 0,
      stderrTail: "",
      peakRss: 0,
      channel: new WireChannel(this.key),
    };
    this.workers.set(id, w);
    proc.stdin!.on("error", () => undefined);
    proc.stdin!.write(`${this.key.toString("hex")}\n`);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (text: string) => {
      w.stderrTail = (w.stderrTail + text).slice(-4096);
      this.options.log(text.replace(/^(?=.)/gm, `[worker ${id}] `));
    });
    let exited = false;
    const exit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = true;
      this.onExit(w, code, signal);
    };
    proc.on("error", (e) => {
      this.options.log(`[nbscale] worker ${id}: ${e.message}\n`);
      w.stderrTail += e.message;
      if (proc.pid === undefined) exit(null, null); // never started: no exit event follows
    });
    proc.on("exit", exit);
    return w;
  }

  private onExit(w: PoolWorker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(w.id);
    w.state = "stopping";
    w.onStartFailure(new WorkerStartError(`worker ${w.id} exited while starting (${signal ?? `code ${code}`}): ${w.stderrTail.trim().slice(-500)}`));
    if (w.task) {
      const death: Death = w.death ?? (/heap out of memory|Reached heap limit|Allocation failed/i.test(w.stderrTail) ? "oom-heap" : "killed");
      w.task.finish({ status: "died", death, signal, code, stderr: w.stderrTail, worker: { id: w.id, pid: w.pid }, peakRss: w.peakRss });
    }
    this.keepWarm();
    for (const wake of this.waiters.splice(0)) wake();
  }

  private watch(w: PoolWorker): void {
    const rss = residentBytes(w.pid);
    if (rss === null) return;
    if (rss > w.peakRss) w.peakRss = rss;
    if (w.memory !== undefined && rss > w.memory && !w.death) this.kill(w, "oom");
  }

  private kill(w: PoolWorker, death: Death): void {
    if (!w.death) w.death = death;
    w.state = "stopping";
    signalWorker(w, "SIGKILL");
  }

  private stop(w: PoolWorker): void {
    w.state = "stopping";
    w.proc.stdin?.end();
    setTimeout(() => {
      if (this.workers.has(w.id)) this.kill(w, "killed");
    }, 2000).unref();
  }

  private removeDirs(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (this.spillDir) fs.rmSync(this.spillDir, { recursive: true, force: true });
  }

  private killAll(): void {
    for (const w of this.workers.values()) signalWorker(w, "SIGKILL");
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [identity, ...parts] of this.router) {
        const id = identity.toString("latin1");
        const w = this.workers.get(id);
        const msg = w?.channel.decode(parts) ?? null;
        if (!msg) {
          const why = w ? "bad signature, or a replayed message" : "not a worker of this kernel";
          this.options.log(`[nbscale] dropped a worker-socket message from ${JSON.stringify(id)}: ${why}\n`);
          continue;
        }
        this.onMessage(w!, msg.header as unknown as WorkerHeader, msg.frames);
      }
    } catch (e) {
      if (!this.closed) this.options.log(`[nbscale] worker socket failed: ${(e as Error).message}\n`);
    }
  }

  private onMessage(w: PoolWorker, header: WorkerHeader, frames: Uint8Array[]): void {
    switch (header.type) {
      case "hello":
        if (w.state === "starting") w.state = w.step ? "busy" : "idle";
        w.onReady();
        if (w.state === "idle") for (const wake of this.waiters.splice(0)) wake();
        return;
      case "event":
        if (w.task?.id === header.task) w.task.onEvent(header.event);
        return;
      case "done":
        if (w.task?.id === header.task) {
          this.watch(w);
          let pieces: Piece[];
          try {
            pieces = piecesOf(frames, header.spilled ?? [], this.spillDir);
          } catch (e) {
            removeSpilled(header.spilled ?? []);
            const error = { name: "StepTransferError", message: `the step's results could not be read: ${(e as Error).message}` };
            w.task.finish({ status: "failed", error, worker: { id: w.id, pid: w.pid }, peakRss: w.peakRss });
            return;
          }
          w.task.finish({ status: "done", outputs: header.outputs, pieces, stubs: header.stubs, worker: { id: w.id, pid: w.pid }, peakRss: w.peakRss });
        }
        return;
      case "failed":
        if (w.task?.id === header.task) w.task.finish({ status: "failed", error: header.error, worker: { id: w.id, pid: w.pid }, peakRss: w.peakRss });
        return;
    }
  }
}

/**
 * The `StepLauncher` of flow steps that run as scheduler jobs (Slurm, AWS
 * Batch). Per task: the compiled flow module goes to the datastore as a blob
 * (once per run), task.json next to it, the target submits a job that runs
 * `nbscale worker --task DATASTORE TASK`, and the remote transport's watcher
 * (backends/remote/kernel-side.ts) streams the worker's output into the
 * run's progress and log while it polls the scheduler. The worker's
 * result.json carries the flow worker's reply, so the runner can't tell a
 * remote step from a local one — except when the job ended without a result:
 * then the target explains the scheduler's ending (out of memory, time
 * limit, FAILED reasons, log location) as the step's error.
 */
import { readFileSync } from "node:fs";
import type { LaunchStatus, Launcher, SubmittedTask } from "../backends/remote/kernel-side";
import { watchTask } from "../backends/remote/kernel-side";
import { FORMAT, newTaskId, taskKey, type RemoteStarted } from "../backends/remote/protocol";
import type { CellError } from "../session/errors";
import type { Datastore } from "../store";
import type { StepError } from "../store/runs";
import type { StepSettings } from "./api";
import type { LaunchOptions, StepLauncher, TaskOutcome } from "./pool";
import type { FlowRemoteResult, FlowRemoteTask } from "./remote-task";
import type { WorkerTask } from "./worker";

/** A TaskOutcome that may already know what to tell the user (the runner prefers it to its own guess). */
export type RemoteTaskOutcome = TaskOutcome & { failure?: StepError };

/** A refusal before anything was submitted: names the setting and how to fix it. */
export class RemoteSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RemoteSetupError";
  }
}

/** A submission the scheduler refused: the step fails with this error, the run goes on. */
export class SubmitRefused extends Error {
  constructor(readonly error: StepError) {
    super(error.message);
    this.name = "SubmitRefused";
  }
}

export interface JobFacts {
  started: RemoteStarted | null;
  peakRss: number;
}

/** One submitted job, as the watcher and the failure report need it. */
export interface RemoteJob<J, S extends LaunchStatus> {
  launcher: Launcher<J, S>;
  job: J;
  /** `Slurm job 12`, `AWS Batch job 1a2b…` */
  label: string;
  /** Why the job ended without a result, in the user's terms. */
  ended(status: S, facts: JobFacts): Promise<StepError>;
  statusMs?: number;
  maxStatusMs?: number;
  endGraceMs?: number;
}

export interface StepResources {
  settings: StepSettings;
  memory?: number;
  cpu?: number;
  gpu?: number;
  timeoutMs?: number;
  env: Record<string, string>;
}

/** Where flow steps go: Slurm or AWS Batch. */
export interface RemoteTarget {
  readonly name: "slurm" | "batch";
  /** The datastore the jobs see (its kernel-side view is the run's datastore). */
  readonly nodeDatastore: string;
  submit(task: SubmittedTask, r: StepResources): Promise<RemoteJob<unknown, LaunchStatus>>;
}

export class RemoteFlowLauncher implements StepLauncher {
  private readonly modules = new Map<string, Promise<string>>();
  private readonly running = new Set<AbortController>();
  /** After Ctrl-C nothing new is submitted: not a retry, not a step whose turn comes later. */
  private stopped = false;
  /** Per step (and item): what the interrupt did to its job, so a retry the runner still asks for reports that. */
  private readonly interrupted = new Map<string, string>();

  constructor(
    private readonly target: RemoteTarget,
    private readonly ds: Datastore,
    /** The step's settings from the flow file (resources, queue, partition, image). */
    private readonly settingsOf: (step: string) => StepSettings,
    /**
     * Where a foreach step's items are counted: here, as the kernel evaluates
     * `--foreach EXPR` in the session. A job just to count would cost a queue
     * wait (minutes on Batch) before the items could even be submitted.
     */
    private readonly local: StepLauncher,
  ) {}

  async run(task: WorkerTask, options: LaunchOptions): Promise<RemoteTaskOutcome> {
    if (task.item && "count" in task.item) return this.local.run(task, options);
    let log = "";
    const say = (text: string): void => {
      log += text;
      options.onOutput?.(text);
    };
    const key = task.item && "index" in task.item ? `${task.step}[${task.item.index}]` : task.step;
    if (this.stopped) {
      const message = this.interrupted.get(key) ?? `interrupted before it was submitted to ${this.target.name === "slurm" ? "Slurm" : "AWS Batch"}`;
      return { ...nothing(log), failure: { kind: "error", message } };
    }
    const settings = this.settingsOf(task.step);
    const id = newTaskId(task.item && "index" in task.item ? `${task.step}-${task.item.index}` : task.step);
    const memory = options.memoryBytes ?? undefined;
    const body: FlowRemoteTask = {
      format: FORMAT,
      kind: "flow",
      task: id,
      step: task.step,
      attempt: 1,
      env: options.env,
      flow: task,
      jsSha256: await this.module(task.jsPath),
      ...(memory !== undefined ? { memory } : {}),
      flushMs: 200,
      created: new Date().toISOString(),
    };
    const backend = this.ds.backend;
    if (!(await backend.createExclusive(taskKey(id, "task.json"), Buffer.from(JSON.stringify(body))))) {
      throw new Error(`task ${id} exists already`);
    }
    const submitted: SubmittedTask = { id, step: task.step, attempt: 1, memory };
    let job: RemoteJob<unknown, LaunchStatus>;
    try {
      job = await this.target.submit(submitted, {
        settings,
        memory,
        cpu: settings.cpu,
        gpu: settings.gpu,
        timeoutMs: options.timeoutMs ?? undefined,
        env: options.env,
      });
    } catch (e) {
      if (!(e instanceof SubmitRefused)) throw e;
      return { ...nothing(log), failure: e.error };
    }
    say(`[nbscale] ${job.label} submitted (task ${id})\n`);

    const abort = new AbortController();
    this.running.add(abort);
    let last = "";
    try {
      const outcome = await watchTask({
        backend,
        task: submitted,
        launcher: job.launcher,
        job: job.job,
        signal: abort.signal,
        statusMs: job.statusMs,
        maxStatusMs: job.maxStatusMs,
        endGraceMs: job.endGraceMs,
        onEvent: (e) => {
          if (e.type === "stream") say(e.text);
          else if (e.type === "display" && typeof e.data["text/plain"] === "string") say(`${e.data["text/plain"]}\n`);
        },
        onStatus: (s) => {
          if (s.label === last) return;
          last = s.label;
          say(`[nbscale] ${job.label}: ${s.label}\n`);
        },
      });
      const pid = outcome.started?.pid ?? null;
      switch (outcome.kind) {
        case "result": {
          const r = outcome.result as FlowRemoteResult;
          return { reply: r.flow, log, exitCode: r.status === "done" ? 0 : 1, signal: null, oom: false, timedOut: false, pid };
        }
        case "cancelled":
          say(`[nbscale] interrupted: ${job.label} was cancelled\n`);
          this.interrupted.set(key, `interrupted; ${job.label} was cancelled`);
          return { ...nothing(log), pid, failure: { kind: "error", message: this.interrupted.get(key)! } };
        case "ended": {
          const failure = await job.ended(outcome.status, { started: outcome.started, peakRss: outcome.peakRss });
          return { ...nothing(log), pid, oom: failure.kind === "oom", timedOut: failure.kind === "timeout", failure };
        }
      }
    } finally {
      this.running.delete(abort);
    }
  }

  stopAll(): void {
    this.stopped = true;
    for (const a of this.running) a.abort();
  }

  /** The compiled flow module as a blob: one upload per run, however many jobs read it. */
  private module(jsPath: string): Promise<string> {
    let p = this.modules.get(jsPath);
    if (!p) {
      p = this.ds.blobs.put([readFileSync(jsPath)]).then((b) => b.sha256);
      this.modules.set(jsPath, p);
    }
    return p;
  }
}

function nothing(log: string): RemoteTaskOutcome {
  return { reply: null, log, exitCode: null, signal: null, oom: false, timedOut: false, pid: null };
}

/** `re-run with \`--memory 2G\`` in a cell message → the same advice for a flow step. */
export function flowMemoryAdvice(step: string, cellMessage: string): string | undefined {
  const size = /--memory ([0-9.]+\s*[KMGT]i?B?)/.exec(cellMessage)?.[1]?.replace(/\s+/g, "");
  if (!size) return undefined;
  return `give it more memory: memory: "${size}" in step("${step}", { ... }) of the flow file (--memory ${size} on the cell's %%step line), then resume the run`;
}

/** A cell's error as a flow step's: the cell-only words go, the job's output file is named. */
export function stepErrorOf(step: string, cell: CellError, outputFile: string | undefined): StepError {
  const where = outputFile ? ` [job output: ${outputFile}]` : "";
  const detail = cell.traceback
    .slice(1)
    .map((l) => l.replace(/;? ?the kernel and its variables are intact/, "").trim())
    .filter((l) => l && l !== "()")
    .join(" ");
  const message = `${flowWording(cell)}${detail ? ` ${detail}` : ""}${where}`;
  if (cell.ename === "StepOutOfMemory") return { kind: "oom", message, advice: flowMemoryAdvice(step, cell.evalue) };
  if (cell.ename === "StepTimeout") return { kind: "timeout", message };
  return { kind: "error", message };
}

function flowWording(cell: CellError): string {
  return cell.evalue.replace(/; re-run with `--memory [^`]+`/, "").replace(/run the cell again/g, "resume the run");
}

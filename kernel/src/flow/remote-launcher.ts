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
import { FORMAT, newTaskId, taskKey, type RemoteStarted } from "../worker/remote/protocol";
import { interrupted, type StepFailure } from "../backends/step-failure";
import type { Datastore } from "../store";
import type { StepSettings } from "./api";
import type { JobState, LaunchOptions, StepLauncher, TaskOutcome } from "./pool";
import type { FlowRemoteResult, FlowRemoteTask } from "./remote-task";
import type { WorkerTask } from "./worker";

/** A TaskOutcome that may already know how the step failed (the scheduler's ending: the runner takes it as is). */
export type RemoteTaskOutcome = TaskOutcome & { failure?: StepFailure; host?: string };

/** A refusal before anything was submitted: names the setting and how to fix it. */
export class RemoteSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RemoteSetupError";
  }
}

/** A submission the scheduler refused: the step fails with this error, the run goes on. */
export class SubmitRefused extends Error {
  constructor(readonly failure: StepFailure) {
    super(failure.message);
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
  /** Said once in the step's log when it was submitted (e.g. a warning about the image). */
  notice?: string;
  /** Why the job ended without a result, in the user's terms. */
  ended(status: S, facts: JobFacts): Promise<StepFailure>;
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
  submit(task: SubmittedTask, r: StepResources): Promise<RemoteJob<unknown, LaunchStatus>>;
  /**
   * All `n` items of a foreach step as one array job (task `<task.id>-<i>`
   * for element i); one RemoteJob per element. Targets without arrays leave
   * it out and each item is its own job.
   */
  submitArray?(task: SubmittedTask, n: number, r: StepResources): Promise<RemoteJob<unknown, LaunchStatus>[]>;
}

export class RemoteFlowLauncher implements StepLauncher {
  private readonly modules = new Map<string, Promise<string>>();
  private readonly running = new Set<AbortController>();
  /** After Ctrl-C nothing new is submitted: not a retry, not a step whose turn comes later. */
  private stopped = false;
  /** Per step (and item): what the interrupt did to its job, so a retry the runner still asks for reports that. */
  private readonly interrupted = new Map<string, string>();
  /** foreach steps whose items run as one array job: the item count from the last count. */
  private readonly counts = new Map<string, number>();
  /** Items whose array element was handed out already: asked for again, they are retries. */
  private readonly retried = new Set<string>();
  private readonly arrays = new Map<string, Promise<{ elements: RemoteJob<unknown, LaunchStatus>[]; tasks: SubmittedTask[] } | { failure: StepFailure }>>();

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
    if (task.item && "count" in task.item) {
      const counted = await this.local.run(task, options);
      // A new count starts a new round of items (a resume counts again).
      this.arrays.delete(task.step);
      for (const k of this.retried) if (k.startsWith(`${task.step}[`)) this.retried.delete(k);
      if (counted.reply?.type === "done" && this.target.submitArray) this.counts.set(task.step, counted.reply.count ?? 0);
      return counted;
    }
    const index = task.item && "index" in task.item ? task.item.index : null;
    const key = index !== null ? `${task.step}[${index}]` : task.step;
    if (this.stopped) {
      const how = this.interrupted.get(key) ?? ` before it was submitted to ${this.target.name === "slurm" ? "Slurm" : "AWS Batch"}`;
      return { ...nothing(""), failure: interrupted(key, how) };
    }
    const out = new Output(options);
    const n = this.counts.get(task.step);
    // The first item asked for submits the whole array; each item's call then follows its own element
    // (the runner's `parallel` only paces how many it waits on at once: Slurm's `%N` paces the elements).
    // An item asked for again (a retry) runs as a job of its own: its element of the array has ended.
    if (index !== null && n !== undefined && this.target.submitArray && !this.retried.has(key)) {
      this.retried.add(key);
      let array = this.arrays.get(task.step);
      if (!array) {
        array = this.submitArray(task, options, n, out);
        this.arrays.set(task.step, array);
      }
      const a = await array;
      if ("failure" in a) return { ...nothing(out.log), failure: a.failure };
      return this.watch(a.elements[index], a.tasks[index], key, out);
    }
    const submitted = await this.putTask(task, options, index !== null ? `${task.step}-${index}` : task.step);
    let job: RemoteJob<unknown, LaunchStatus>;
    try {
      job = await this.target.submit(submitted, this.resources(task, options));
    } catch (e) {
      if (!(e instanceof SubmitRefused)) throw e;
      return { ...nothing(out.log), failure: e.failure };
    }
    if (job.notice) out.say(job.notice);
    out.say(`[nbscale] ${job.label} submitted (task ${submitted.id})\n`);
    return this.watch(job, submitted, key, out);
  }

  /** Every item of a foreach step as one Slurm job array: task `<base>-<i>` for element i. */
  private async submitArray(
    task: WorkerTask,
    options: LaunchOptions,
    n: number,
    out: Output,
  ): Promise<{ elements: RemoteJob<unknown, LaunchStatus>[]; tasks: SubmittedTask[] } | { failure: StepFailure }> {
    const base = newTaskId(task.step);
    const tasks: SubmittedTask[] = [];
    for (let i = 0; i < n; i++) tasks.push(await this.putTask({ ...task, item: { index: i } }, options, task.step, `${base}-${i}`));
    try {
      const elements = await this.target.submitArray!(
        { id: base, step: task.step, attempt: 1, memory: options.memoryBytes ?? undefined },
        n,
        this.resources(task, options),
      );
      out.say(`[nbscale] ${elements[0]?.label.replace(/_\d+$/, "") ?? "Slurm array job"} submitted: ${n} items (tasks ${base}-0…${n - 1})\n`);
      return { elements, tasks };
    } catch (e) {
      if (!(e instanceof SubmitRefused)) throw e;
      return { failure: e.failure };
    }
  }

  private resources(task: WorkerTask, options: LaunchOptions): StepResources {
    const settings = this.settingsOf(task.step);
    return {
      settings,
      memory: options.memoryBytes ?? undefined,
      cpu: settings.cpu,
      gpu: settings.gpu,
      timeoutMs: options.timeoutMs ?? undefined,
      env: options.env,
    };
  }

  /** Writes `tasks/<id>/task.json` for one flow task. */
  private async putTask(task: WorkerTask, options: LaunchOptions, label: string, id = newTaskId(label)): Promise<SubmittedTask> {
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
    if (!(await this.ds.backend.createExclusive(taskKey(id, "task.json"), Buffer.from(JSON.stringify(body))))) {
      throw new Error(`task ${id} exists already`);
    }
    return { id, step: task.step, attempt: 1, memory };
  }

  /** Tails the job's output into the step's log until its result, its end, or Ctrl-C. */
  private async watch(job: RemoteJob<unknown, LaunchStatus>, submitted: SubmittedTask, key: string, out: Output): Promise<RemoteTaskOutcome> {
    out.state({ phase: "submitted", text: `${job.label}: submitted` });
    const abort = new AbortController();
    this.running.add(abort);
    let last = "";
    try {
      const outcome = await watchTask({
        backend: this.ds.backend,
        task: submitted,
        launcher: job.launcher,
        job: job.job,
        signal: abort.signal,
        statusMs: job.statusMs,
        maxStatusMs: job.maxStatusMs,
        endGraceMs: job.endGraceMs,
        onEvent: (e) => {
          if (e.type === "stream") out.say(e.text);
          else if (e.type === "display" && typeof e.data["text/plain"] === "string") out.say(`${e.data["text/plain"]}\n`);
        },
        onStatus: (s) => {
          if (s.label === last) return;
          last = s.label;
          out.say(`[nbscale] ${job.label}: ${s.label}\n`);
          out.state({ phase: s.phase, text: `${job.label}: ${s.label}` });
        },
      });
      const pid = outcome.started?.pid ?? null;
      const host = outcome.kind === "result" ? outcome.result.host : outcome.started?.host;
      const where = host !== undefined ? { host } : {};
      switch (outcome.kind) {
        case "result": {
          const r = outcome.result as FlowRemoteResult;
          return { reply: r.flow, log: out.log, exitCode: r.status === "done" ? 0 : 1, signal: null, ending: null, peakRss: r.peakRss, pid, ...where };
        }
        case "cancelled":
          out.say(`[nbscale] interrupted: ${job.label} was cancelled\n`);
          this.interrupted.set(key, `; ${job.label} was cancelled`);
          return { ...nothing(out.log), pid, ...where, failure: interrupted(key, this.interrupted.get(key)) };
        case "ended": {
          const failure = await job.ended(outcome.status, { started: outcome.started, peakRss: outcome.peakRss });
          return { ...nothing(out.log), pid, ...where, peakRss: outcome.peakRss, failure };
        }
      }
    } finally {
      this.running.delete(abort);
      out.state({ phase: "ended", text: `${job.label}: ended` });
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

/** A task's log: what the job printed and what happened to it, also passed on live. */
class Output {
  log = "";
  constructor(private readonly options: LaunchOptions) {}
  say(text: string): void {
    this.log += text;
    this.options.onOutput?.(text);
  }
  state(s: JobState): void {
    this.options.onJobState?.(s);
  }
}

function nothing(log: string): RemoteTaskOutcome {
  return { reply: null, log, exitCode: null, signal: null, ending: null, peakRss: 0, pid: null };
}

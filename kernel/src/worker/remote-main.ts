/**
 * `nbscale worker --task DATASTORE TASK`: the one worker a batch job runs
 * (Slurm, AWS Batch), for a notebook's step and a flow's step alike. The
 * contract is the same for both: task.json read once; started.json once per
 * attempt (a requeued job never runs a step twice); the step's output as
 * event chunks while it runs (and in the job's own output file, which a
 * failure names), its peak memory, result.json last. What differs is only
 * how the task's body runs: a packaged cell program (here), or a flow's step
 * (a `RemoteTaskKind` the caller passes in: flow/remote-worker.ts), so the
 * worker knows no flow.
 *
 * Exit status: 0 when the step succeeded, 1 when it threw (the result says
 * why), 2 when there was no task to run. A worker killed from outside
 * (out of memory, time limit, scancel) writes no result; the launcher's
 * view of the job then tells the kernel what happened.
 */
import { hostname } from "node:os";
import { installDisplaySink } from "../client/display";
import { backendFor } from "../store/backends";
import { resolveDatastore } from "../store/location";
import { ThreadedEventLog } from "./remote/event-thread";
import { ShippedOutput } from "./remote/output-cap";
import { PeakRss } from "./remote/peak-rss";
import { attemptKey, FORMAT, taskKey, type RemoteResult, type ResultBody, type RemoteStarted, type RemoteTask } from "./remote/protocol";
import type { StorageBackend } from "../store/backend";
import { loadValues, storeOutputs } from "./remote/values";
import { decodeValues } from "./codec";
import { runProgram } from "./runner";
import { stepRequire } from "./require";
import { captureStreams, toRemoteError } from "./streams";
import type { ClassResolver } from "../store/serialize";

export interface RemoteWorkerOptions {
  /** The datastore as this machine sees it: a directory or s3://bucket/prefix. */
  datastore: string;
  task: string;
  cwd: string;
}

/** The launcher's job id, from the environment the scheduler gives the job. */
function jobId(env: NodeJS.ProcessEnv): string | undefined {
  if (env.SLURM_ARRAY_JOB_ID && env.SLURM_ARRAY_TASK_ID) return `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}`;
  return env.SLURM_JOB_ID ?? env.AWS_BATCH_JOB_ID;
}

/** The launcher's attempt of this job: AWS Batch numbers the tries of its retryStrategy from 1. */
export function launcherAttempt(env: NodeJS.ProcessEnv): number {
  const n = Number(env.AWS_BATCH_JOB_ATTEMPT);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/**
 * The task this worker runs: the one named, or for a child of an AWS Batch
 * array job (NBSCALE_TASK_ARRAY=1) element `<task>-<AWS_BATCH_JOB_ARRAY_INDEX>`,
 * since every child runs the same command.
 */
export function taskOf(task: string, env: NodeJS.ProcessEnv): string {
  if (env.NBSCALE_TASK_ARRAY !== "1") return task;
  const index = env.AWS_BATCH_JOB_ARRAY_INDEX;
  if (!index || !/^\d+$/.test(index)) {
    throw new Error(`task ${task} is an array job's, but AWS_BATCH_JOB_ARRAY_INDEX is ${index === undefined ? "not set" : JSON.stringify(index)}`);
  }
  return `${task}-${index}`;
}

/** How one kind of task.json runs: the transport around it is the worker's (runRemoteWorker). */
export interface RemoteTaskKind {
  /** Whether task.json is of this kind. */
  accepts(task: unknown): boolean;
  /** Runs the task's body; what it returns goes into result.json (`extra` beside the outcome). */
  run(task: unknown, ctx: RemoteTaskContext): Promise<{ outcome: ResultBody; extra?: Record<string, unknown> }>;
}

export interface RemoteTaskContext {
  backend: StorageBackend;
  /** The datastore as this machine sees it (the job's command line). */
  datastore: string;
  cwd: string;
  attempt: number;
}

/** A packaged cell program (a `%%step --on slurm|batch`): inputs and outputs are values in the datastore. */
const programTask: RemoteTaskKind = {
  accepts: () => true,
  async run(raw, ctx) {
    const task = raw as RemoteTask;
    Object.assign(process.env, { NBSCALE_STEP: task.step });
    const inputs = async (resolveClass: ClassResolver) => {
      const { specs, frames } = await loadValues(ctx.backend, task.inputs, "input");
      return Object.fromEntries(await decodeValues(specs, frames, resolveClass));
    };
    const outputs = await runProgram(task.program, { inputs }, { require: stepRequire(ctx.cwd), cwd: ctx.cwd });
    // Streamed into blobs a run at a time: a big value is never a second full copy here.
    const stored = await storeOutputs(ctx.backend, outputs);
    return { outcome: { status: "done", outputs: stored.refs, stubs: stored.stubs } };
  },
};

export async function runRemoteWorker(opts: RemoteWorkerOptions, kinds: readonly RemoteTaskKind[] = []): Promise<number> {
  const realErr = process.stderr.write.bind(process.stderr);
  let o: RemoteWorkerOptions;
  try {
    o = { ...opts, task: taskOf(opts.task, process.env) };
  } catch (e) {
    realErr(`[nbscale worker ${opts.task}] ${(e as Error).message}\n`);
    return 2;
  }
  const log = (text: string) => void realErr(`[nbscale worker ${o.task}] ${text}\n`);
  const backend = backendFor(resolveDatastore({ flag: o.datastore, env: process.env, cwd: o.cwd }));

  const raw = await backend.get(taskKey(o.task, "task.json"));
  if (!raw) {
    log(`no task ${o.task} in the datastore at ${backend.location}: is NBSCALE_SLURM_DATASTORE (the datastore as the nodes see it) right?`);
    return 2;
  }
  const task = JSON.parse(raw.toString("utf8")) as RemoteTask;
  if (task.format > FORMAT) {
    log(`task ${o.task} has format ${task.format}; this nbscale reads ${FORMAT}: install the nbscale version that submitted it on the nodes`);
    return 2;
  }
  const kind = kinds.find((k) => k.accepts(task)) ?? programTask;
  const attempt = launcherAttempt(process.env);
  // A retry after an attempt that did finish (its container died on the way out) has nothing to do.
  if (await backend.stat(taskKey(o.task, "result.json"))) {
    log(`task ${o.task} already has a result; attempt ${attempt} does not run it again`);
    return 0;
  }
  const started: RemoteStarted = { host: hostname(), pid: process.pid, job: jobId(process.env), attempt, started: new Date().toISOString() };
  // Exclusive per attempt: a second worker on the same attempt (a requeued job) would interleave its
  // output with the first's, while the launcher's own retry of a lost attempt gets a log of its own.
  if (!(await backend.createExclusive(attemptKey(o.task, attempt, "started.json"), Buffer.from(JSON.stringify(started))))) {
    log(`attempt ${attempt} of task ${o.task} was started before by another worker; not running it twice`);
    return 2;
  }

  const events = new ThreadedEventLog({ datastore: o.datastore, cwd: o.cwd, task: o.task, flushMs: task.flushMs, attempt });
  // The output goes to the event log (live, up to NBSCALE_LOG_BYTES: output-cap.ts) and to the job's own
  // output file, which is where a failure's last lines are read from and which it names.
  const shipping = new ShippedOutput((name, text) => events.push({ type: "stream", name, text }));
  const streams = captureStreams((name, text) => {
    shipping.offer(name, text);
    streams.real(name, text);
  });
  installDisplaySink({
    display: (data, metadata, displayId, update) => events.push({ type: "display", data, metadata, displayId, update }),
    clear: (wait) => events.push({ type: "clear", wait }),
  });
  const memory = new PeakRss((r) => events.push(r));

  let fail: ((e: unknown) => void) | null = null;
  process.on("uncaughtException", (e) => (fail ? fail(e) : log(`uncaught: ${(e as Error)?.stack ?? e}`)));
  process.on("unhandledRejection", (e) => (fail ? fail(e) : log(`unhandled rejection: ${(e as Error)?.stack ?? e}`)));

  Object.assign(process.env, task.env, { NBSCALE_ATTEMPT: String(Math.max(task.attempt, attempt)) });
  let outcome: ResultBody;
  let extra: Record<string, unknown> = {};
  try {
    const failed = new Promise<never>((_, reject) => (fail = reject));
    ({ outcome, extra = {} } = await Promise.race([kind.run(task, { backend, datastore: o.datastore, cwd: o.cwd, attempt }), failed]));
  } catch (e) {
    outcome = { status: "failed", error: toRemoteError(e) };
  } finally {
    fail = null;
  }
  const peakRss = memory.stop();
  const chunks = await events.flush();
  const result: RemoteResult = {
    format: FORMAT,
    events: chunks,
    attempt,
    peakRss,
    host: started.host,
    pid: process.pid,
    finished: new Date().toISOString(),
    ...outcome,
    ...extra,
  };
  // The first attempt to finish commits the outputs; a later one's are left unreferenced.
  if (!(await backend.createExclusive(taskKey(o.task, "result.json"), Buffer.from(JSON.stringify(result))))) {
    log(`task ${o.task} got a result from another attempt first; attempt ${attempt}'s is discarded`);
  }
  return outcome.status === "done" ? 0 : 1;
}

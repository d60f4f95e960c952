/**
 * `nbscale worker --task DATASTORE TASK`: the worker as a batch job runs it
 * (Slurm, AWS Batch). Same runner, codec and display sink as a local worker;
 * only the transport differs: the task, its inputs, the step's output and
 * its result all go through the datastore (backends/remote/protocol.ts).
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

export async function runRemoteWorker(opts: RemoteWorkerOptions): Promise<number> {
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
    log(`task ${o.task} has format ${task.format}; this nbscale reads ${FORMAT}: install the kernel's nbscale version on the nodes`);
    return 2;
  }
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
  // Past NBSCALE_LOG_BYTES the output stays in the job's own stdout/stderr (output-cap.ts).
  const shipping = new ShippedOutput((name, text) => events.push({ type: "stream", name, text }));
  const streams = captureStreams((name, text) => {
    const rest = shipping.offer(name, text);
    if (rest) streams.real(name, rest);
  });
  installDisplaySink({
    display: (data, metadata, displayId, update) => events.push({ type: "display", data, metadata, displayId, update }),
    clear: (wait) => events.push({ type: "clear", wait }),
  });
  const memory = new PeakRss((r) => events.push(r));

  let fail: ((e: unknown) => void) | null = null;
  process.on("uncaughtException", (e) => (fail ? fail(e) : log(`uncaught: ${(e as Error)?.stack ?? e}`)));
  process.on("unhandledRejection", (e) => (fail ? fail(e) : log(`unhandled rejection: ${(e as Error)?.stack ?? e}`)));

  Object.assign(process.env, task.env, { NBSCALE_STEP: task.step, NBSCALE_ATTEMPT: String(Math.max(task.attempt, attempt)) });
  let outcome: ResultBody;
  try {
    const failed = new Promise<never>((_, reject) => (fail = reject));
    const inputs = async (resolveClass: ClassResolver) => {
      const { specs, frames } = await loadValues(backend, task.inputs, "input");
      return Object.fromEntries(await decodeValues(specs, frames, resolveClass));
    };
    const outputs = await Promise.race([runProgram(task.program, { inputs }, { require: stepRequire(o.cwd), cwd: o.cwd }), failed]);
    const stored = await storeOutputs(backend, outputs);
    outcome = { status: "done", outputs: stored.refs, stubs: stored.stubs };
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
  };
  // The first attempt to finish commits the outputs; a later one's are left unreferenced.
  if (!(await backend.createExclusive(taskKey(o.task, "result.json"), Buffer.from(JSON.stringify(result))))) {
    log(`task ${o.task} got a result from another attempt first; attempt ${attempt}'s is discarded`);
  }
  return outcome.status === "done" ? 0 : 1;
}

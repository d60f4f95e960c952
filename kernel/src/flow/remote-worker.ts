/**
 * The job's half of a remote flow step: `nbscale worker --task DATASTORE
 * TASK` hands the task here when task.json says `kind: "flow"` (see
 * remote-task.ts). Same contract as the cell worker (worker/remote-main.ts):
 * started.json once (a requeued job never runs a step twice), output as
 * event chunks while the step runs, result.json last; exit 0 when the step
 * succeeded, 1 when it threw, 2 when there was nothing to run.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { ThreadedEventLog } from "../worker/remote/event-thread";
import { ShippedOutput } from "../worker/remote/output-cap";
import { PeakRss } from "../worker/remote/peak-rss";
import { FORMAT, taskKey, type RemoteStarted } from "../worker/remote/protocol";
import { Datastore } from "../store";
import { resolveDatastore } from "../store/location";
import type { StorageBackend } from "../store/backend";
import { isFlowTask, type FlowRemoteResult } from "./remote-task";
import { taskOf } from "../worker/remote-main";
import { runTask, type WorkerReply } from "./worker";

export interface FlowWorkerOptions {
  /** The datastore as this machine sees it (the job's command line). */
  datastore: string;
  task: string;
  cwd: string;
}

/** The scheduler's id for this job, as the job's environment tells it. */
function jobId(env: NodeJS.ProcessEnv): string | undefined {
  if (env.SLURM_ARRAY_JOB_ID && env.SLURM_ARRAY_TASK_ID) return `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}`;
  return env.SLURM_JOB_ID ?? env.AWS_BATCH_JOB_ID;
}

/**
 * Runs the task when it is a flow step and returns the exit code; null when
 * it is not one (the caller runs it as a cell task).
 */
export async function runFlowTaskIfAny(opts: FlowWorkerOptions): Promise<number | null> {
  let o: FlowWorkerOptions;
  try {
    // A child of an AWS Batch array job runs the element task its index names.
    o = { ...opts, task: taskOf(opts.task, process.env) };
  } catch {
    return null; // the cell worker says what is wrong with the array settings
  }
  const loc = resolveDatastore({ flag: o.datastore, env: process.env, cwd: o.cwd });
  const ds = await Datastore.open(loc, { create: false }).catch(() => null);
  if (!ds) return null;
  const backend: StorageBackend = ds.backend;
  const raw = await backend.get(taskKey(o.task, "task.json"));
  if (!raw) return null;
  const task: unknown = JSON.parse(raw.toString("utf8"));
  if (!isFlowTask(task)) return null;
  const say = (text: string): void => void process.stderr.write(`[nbscale worker ${o.task}] ${text}\n`);
  if (task.format > FORMAT) {
    say(`task ${o.task} has format ${task.format}; this nbscale reads ${FORMAT}: install the nbscale version that ran \`nbscale run\` on the nodes`);
    return 2;
  }
  const started: RemoteStarted = { host: hostname(), pid: process.pid, job: jobId(process.env), started: new Date().toISOString() };
  if (!(await backend.createExclusive(taskKey(o.task, "started.json"), Buffer.from(JSON.stringify(started))))) {
    say(`task ${o.task} was started before by another worker; not running it twice`);
    return 2;
  }

  const events = new ThreadedEventLog({ datastore: o.datastore, cwd: o.cwd, task: o.task, flushMs: task.flushMs });
  // Output goes to the event log (live, for `nbscale run`; up to NBSCALE_LOG_BYTES, see output-cap.ts)
  // and still to the job's own output file (the log location a failure names). console.* writes through these too.
  const shipping = new ShippedOutput((name, text) => events.push({ type: "stream", name, text }));
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8");
      shipping.offer(name, text);
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  const memory = new PeakRss((r) => events.push(r));

  Object.assign(process.env, task.env, { NBSCALE_FLOW_STEP: task.flow.step, NBSCALE_RUN: task.flow.run, NBSCALE_ATTEMPT: String(task.attempt) });
  const tmp = mkdtempSync(join(tmpdir(), "nbscale-flow-job-"));
  let reply: WorkerReply;
  try {
    const jsPath = join(tmp, "flow.js");
    writeFileSync(jsPath, await ds.blobs.read(task.jsSha256, "the flow's compiled module"));
    // The flow's folder when this machine has it (Slurm on a shared filesystem), so its
    // relative imports and node_modules resolve; else the job's working directory (Batch).
    const flowPath = existsSync(dirname(task.flow.flowPath)) ? task.flow.flowPath : join(o.cwd, basename(task.flow.flowPath));
    reply = await runTask({ ...task.flow, flowPath, jsPath, datastore: loc.path });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`${err.stack ?? err.message}\n`);
    reply = { type: "failed", ename: err.name, message: err.message, stack: err.stack ?? "" };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const peakRss = memory.stop();
  const chunks = await events.flush();
  const result: FlowRemoteResult = {
    format: FORMAT,
    events: chunks,
    peakRss,
    host: started.host,
    pid: process.pid,
    finished: new Date().toISOString(),
    ...(reply.type === "done"
      ? { status: "done" as const, outputs: [], stubs: [] }
      : { status: "failed" as const, error: { name: reply.ename, message: reply.message, stack: reply.stack } }),
    flow: reply,
  };
  await backend.createExclusive(taskKey(o.task, "result.json"), Buffer.from(JSON.stringify(result)));
  return reply.type === "done" ? 0 : 1;
}

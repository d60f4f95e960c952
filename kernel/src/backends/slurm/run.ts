/**
 * `%%step … --on slurm`: one step as one Slurm job, over the remote
 * transport. The cell shows the job's queue state live (PENDING with Slurm's
 * reason, RUNNING on node X), then the step's own output; the result comes
 * back as a TaskResult like a local worker's, so dispatch binds it the same
 * way. Endings that are Slurm's (limits, cancellation, node failure, a
 * refused request) are thrown as a `SlurmStepError` with their message.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { display } from "../../client/display";
import { notStarted, type StepFailure } from "../step-failure";
import { StepFailed, type StepRequest } from "../step-backend";
import { backendFor } from "../../store/backends";
import type { StorageBackend } from "../../store/backend";
import { notebookPath, resolveDatastore } from "../../store/location";
import type { TaskResult } from "../local-pool";
import { putTask, watchTask } from "../remote/kernel-side";
import { loadValues, UnreachableLazyInput } from "../../worker/remote/values";
import { lazyInputError } from "../remote/lazy-input-error";
import { jobEnding, SlurmLauncher, type SlurmJob, type SlurmStatus } from "./launcher";
import { submitOrExplain } from "./submit";
import { SlurmConfigError, slurmSettings, type SlurmSettings } from "./settings";

/** A step that ended without a result from its worker: Slurm's ending (or refusal), as facts. */
export class SlurmStepError extends StepFailed {
  constructor(failure: StepFailure, jobId?: string) {
    super(failure, jobId);
    this.name = "SlurmStepError";
  }
}

/** The nbscale package directory (its bin/nbscale.js is what the nodes run by default). */
export function packageDir(): string {
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "nbscale") return dir;
    } catch {
      /* keep walking up */
    }
  }
  return resolve(__dirname, "../../../..");
}

/** One attempt as a Slurm job: the request's fields Slurm reads, the notebook's folder and the interrupt's signal. */
export type SlurmStepRequest = Pick<
  StepRequest,
  "step" | "attempt" | "memory" | "cpu" | "gpu" | "timeoutMs" | "partition" | "env" | "program" | "inputs" | "onEvent"
> & {
  cwd: string;
  signal: AbortSignal;
};

export interface SlurmStepResult {
  result: TaskResult;
  job: string;
  host?: string;
}

/** The kernel's datastore, by the recorder's rule (NBSCALE_DATASTORE, else .nbscale/ next to the notebook). */
export function kernelDatastore(cwd: string) {
  const nb = notebookPath(process.env, cwd);
  const notebookDir = nb === resolve(cwd) ? nb : dirname(nb);
  return resolveDatastore({ env: process.env, cwd, notebookDir });
}

function elapsed(since: number): string {
  const s = (Date.now() - since) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
}

/**
 * The kernel's datastore and the Slurm settings for a cell's step (single or
 * array); a bad setting becomes the cell's SlurmConfigError.
 */
export function cellSlurmSetup(step: string, partition: string | undefined, cwd: string): { settings: SlurmSettings; backend: StorageBackend } {
  const loc = kernelDatastore(cwd);
  try {
    return { settings: slurmSettings({ partition, env: process.env, datastore: loc, cwd, packageDir: packageDir() }), backend: backendFor(loc) };
  } catch (e) {
    if (e instanceof SlurmConfigError) throw new SlurmStepError(notStarted("SlurmConfigError", `step \`${step}\` was not submitted: ${e.message}`));
    throw e;
  }
}

export async function runSlurmStep(req: SlurmStepRequest): Promise<SlurmStepResult> {
  const { settings, backend } = cellSlurmSetup(req.step, req.partition, req.cwd);
  // Lazy inputs travel as refs into this datastore: the job reads them from the shared filesystem, not through the kernel.
  const { task } = await putTask(backend, {
    step: req.step,
    attempt: req.attempt,
    env: req.env,
    program: req.program,
    inputs: req.inputs,
    memory: req.memory,
  }).catch((e: unknown) => {
    throw e instanceof UnreachableLazyInput ? new SlurmStepError(lazyInputError(req.step, e, "Slurm")) : e;
  });
  const launcher = new SlurmLauncher(settings, { memory: req.memory, cpu: req.cpu, gpu: req.gpu, timeoutMs: req.timeoutMs });
  const job: SlurmJob = await submitOrExplain(
    launcher,
    task,
    { step: req.step, memory: req.memory, cpu: req.cpu, gpu: req.gpu, partition: settings.partition },
    (f) => new SlurmStepError(f),
  );

  // One line in the cell, replaced as the job moves through the queue.
  const line = display.create();
  const submitted = Date.now();
  let runningSince: number | null = null;
  let last = "submitted";
  const show = (label: string) => {
    last = label;
    line.text(`Slurm job ${job.id}: ${label} · ${elapsed(runningSince ?? submitted)}`);
  };
  show(`submitted${settings.partition ? ` to partition ${settings.partition}` : ""}`);
  const outcome = await watchTask<SlurmJob, SlurmStatus>({
    backend,
    task,
    launcher,
    job,
    onEvent: req.onEvent,
    onStatus: (s) => {
      if (s.phase === "running" && runningSince === null) runningSince = Date.now();
      show(s.label);
    },
    signal: req.signal,
  });
  // Slurm's name for the node (as in the RUNNING line), else the worker's hostname.
  const final = outcome.kind === "result" && !outcome.status?.info?.nodes ? await launcher.status(job).catch(() => null) : null;
  const host = final?.info?.nodes || outcome.status?.info?.nodes || outcome.started?.host;
  const worker = { id: job.id, pid: outcome.started?.pid ?? 0 };

  if (outcome.kind === "cancelled") {
    show(`cancelled with scancel (${outcome.status?.label ?? last})`);
    process.stderr.write(`step \`${req.step}\`: interrupted; Slurm job ${job.id} was cancelled with scancel\n`);
    return { job: job.id, host, result: { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker, peakRss: outcome.peakRss } };
  }
  if (outcome.kind === "ended") {
    show(outcome.status.label);
    throw new SlurmStepError(jobEnding(req.step, job.id, job.outputFile, outcome.status.info, req, outcome), job.id);
  }
  const r = outcome.result;
  show(`${r.status === "done" ? "COMPLETED" : "FAILED"}${host ? ` on ${host}` : ""}`);
  if (r.status === "failed") return { job: job.id, host, result: { status: "failed", error: r.error, worker, peakRss: r.peakRss } };
  const { specs, frames } = await loadValues(backend, r.outputs, `step \`${req.step}\` output`);
  return { job: job.id, host, result: { status: "done", outputs: specs, pieces: frames, stubs: r.stubs, worker, peakRss: r.peakRss } };
}

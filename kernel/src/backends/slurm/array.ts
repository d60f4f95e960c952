/**
 * `%%step … --on slurm --foreach EXPR [--parallel N]`: the items as ONE Slurm
 * job array (`sbatch --array=0-(n-1)%N`), so the cluster sees one job, the
 * user one id to scancel, and Slurm itself enforces the parallelism.
 *
 * Element i runs task `<base>-i` (script.ts); each element's task carries the
 * shared inputs plus its own item, and since values are content-addressed
 * blobs the shared inputs are written once and only stat'ed for the others.
 * Each element is watched like a single Slurm step (remote/kernel-side.ts),
 * but all of them share one `scontrol show job <array>` poll: a thousand
 * elements must not mean a thousand scontrol calls per second.
 */
import { display } from "../../client/display";
import type { CellError } from "../../session/errors";
import { backendFor } from "../../store/backends";
import type { EncodedValues } from "../../worker/codec";
import type { StepEvent, StepProgram } from "../../worker/events";
import type { TaskResult } from "../local-pool";
import { putTask, watchTask, type Launcher, type SubmittedTask } from "../remote/kernel-side";
import { newTaskId, taskKey } from "../remote/protocol";
import { loadValues } from "../remote/values";
import { cellError } from "../../step/failures";
import { sacctJob, showJob, showNodes, type JobInfo } from "./commands";
import { endedJobError, submitError } from "./failures";
import { describe, readOutputTail, SbatchError, SlurmLauncher, type SlurmStatus } from "./launcher";
import { kernelDatastore, packageDir, SlurmStepError } from "./run";
import { SlurmConfigError, slurmSettings, type SlurmSettings } from "./settings";

type Inputs = Pick<EncodedValues, "specs" | "frames">;

export interface SlurmArrayRequest {
  step: string;
  memory?: number;
  cpu?: number;
  gpu?: number;
  timeoutMs?: number;
  partition?: string;
  /** The `%` of `--array`: at most this many elements run at once (none: Slurm decides). */
  parallel?: number;
  env: Record<string, string>;
  program: StepProgram;
  common: Inputs;
  perItem: Inputs[];
  cwd: string;
  signal: AbortSignal;
  onEvent(index: number, e: StepEvent): void;
  /** The array job was submitted. */
  onSubmitted?(job: string): void;
  /** Element phases changed: running = elements Slurm runs that have no result yet. */
  onCounts(c: { done: number; running: number; failed: number }): void;
}

export type ElementOutcome =
  /** The worker wrote a result (done or failed), or the element was cancelled (status "died"). */
  | { index: number; job: string; host?: string; started: Date; finished: Date; result: TaskResult }
  /** The element ended without a result: Slurm's ending, in the user's terms. */
  | { index: number; job: string; host?: string; started: Date; finished: Date; error: CellError; peakRss: number };

export interface SlurmArrayResult {
  /** The array job id (`%A`). */
  job: string;
  elements: ElementOutcome[];
}

/** `1-3%2`, `0,2,5-7` → the indices (pending elements are listed as one range). */
export function arrayIndices(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.replace(/%\d+$/, "").split(",")) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] !== undefined ? Number(m[2]) : from;
    const by = m[3] !== undefined ? Math.max(1, Number(m[3])) : 1;
    for (let i = from; i <= to; i += by) out.push(i);
  }
  return out;
}

/** One `scontrol show job <array>` shared by every element's watcher, at most every `minMs`. */
export class ArrayStates {
  private last = 0;
  private inflight: Promise<Map<number, JobInfo> | null> | null = null;
  private cached: Map<number, JobInfo> | null = null;

  constructor(
    readonly job: string,
    private readonly minMs = 500,
  ) {}

  async get(): Promise<Map<number, JobInfo> | null> {
    if (this.inflight) return this.inflight;
    if (this.cached && Date.now() - this.last < this.minMs) return this.cached;
    this.inflight = (async () => {
      try {
        const infos = await showJob(this.job);
        this.last = Date.now();
        if (!infos) return (this.cached = null);
        const m = new Map<number, JobInfo>();
        for (const info of infos) for (const i of arrayIndices(info.arrayTask ?? "")) m.set(i, { ...info, id: `${this.job}_${i}` });
        return (this.cached = m);
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }
}

/** The launcher each element's watcher sees: status from the shared poll, cancel = scancel of the whole array. */
export class ElementLauncher implements Launcher<number, SlurmStatus> {
  private cancelling: Promise<void> | null = null;

  constructor(
    private readonly states: ArrayStates,
    private readonly array: SlurmLauncher,
  ) {}

  submit(): Promise<number> {
    throw new Error("array elements are submitted together");
  }

  async status(index: number): Promise<SlurmStatus> {
    const m = await this.states.get();
    const info = m?.get(index) ?? (m === null ? ((await sacctJob(`${this.states.job}_${index}`))?.[0] ?? null) : null);
    return describe(info);
  }

  cancel(): Promise<void> {
    this.cancelling ??= this.array.cancel({ id: this.states.job });
    return this.cancelling;
  }
}

export async function runSlurmArray(req: SlurmArrayRequest): Promise<SlurmArrayResult> {
  const n = req.perItem.length;
  const loc = kernelDatastore(req.cwd);
  let settings: SlurmSettings;
  try {
    settings = slurmSettings({ partition: req.partition, env: process.env, datastore: loc, cwd: req.cwd, packageDir: packageDir() });
  } catch (e) {
    if (e instanceof SlurmConfigError) throw new SlurmStepError(cellError("SlurmConfigError", `step \`${req.step}\` was not submitted: ${e.message}`));
    throw e;
  }
  const backend = backendFor(loc);
  const base = newTaskId(req.step);
  // Also makes tasks/<base>/ exist: the array's output files (slurm-%A_%a.out) go there, and Slurm won't create directories.
  await backend.createExclusive(taskKey(base, "array.json"), Buffer.from(JSON.stringify({ step: req.step, items: n, created: new Date().toISOString() })));
  for (let i = 0; i < n; i++) {
    await putTask(backend, {
      id: `${base}-${i}`,
      step: `${req.step}[${i}]`,
      attempt: 1,
      env: { ...req.env, NBSCALE_FOREACH_INDEX: String(i) },
      program: req.program,
      inputs: { specs: [...req.common.specs, ...req.perItem[i].specs], frames: [...req.common.frames, ...req.perItem[i].frames] },
      memory: req.memory,
    });
  }

  const parallel = req.parallel !== undefined && req.parallel < n ? `%${req.parallel}` : "";
  const launcher = new SlurmLauncher(settings, { memory: req.memory, cpu: req.cpu, gpu: req.gpu, timeoutMs: req.timeoutMs, array: `0-${n - 1}${parallel}` });
  const task: SubmittedTask = { id: base, step: req.step, attempt: 1, memory: req.memory };
  let job: { id: string; outputFile?: string };
  try {
    job = await launcher.submit(task);
  } catch (e) {
    if (!(e instanceof SbatchError)) throw e;
    const nodes = await showNodes().catch(() => null);
    throw new SlurmStepError(submitError(req.step, e.stderr, { memory: req.memory, cpu: req.cpu, gpu: req.gpu, partition: settings.partition }, nodes));
  }
  req.onSubmitted?.(job.id);
  display.create().text(`Slurm array job ${job.id}: ${n} item${n === 1 ? "" : "s"}${parallel ? `, at most ${req.parallel} at once` : ""}${settings.partition ? ` in partition ${settings.partition}` : ""}`);

  const states = new ArrayStates(job.id);
  const elements = new ElementLauncher(states, launcher);
  const phase: Array<"queued" | "running" | "done" | "failed"> = new Array(n).fill("queued");
  const report = () =>
    req.onCounts({
      done: phase.filter((p) => p === "done").length,
      running: phase.filter((p) => p === "running").length,
      failed: phase.filter((p) => p === "failed").length,
    });

  const watchOne = async (index: number): Promise<ElementOutcome> => {
    const id = `${job.id}_${index}`;
    const started = new Date();
    const running = () => {
      if (phase[index] !== "queued") return;
      phase[index] = "running";
      report();
    };
    const outcome = await watchTask<number, SlurmStatus>({
      backend,
      task: { ...task, id: `${base}-${index}` },
      launcher: elements,
      job: index,
      onEvent: (e) => {
        // Output means it runs, even if the element started and the shared scontrol poll has not seen it yet.
        running();
        req.onEvent(index, e);
      },
      onStatus: (s, up) => {
        if (s.phase === "running" || up) running();
      },
      signal: req.signal,
    });
    const host = outcome.status?.info?.nodes || outcome.started?.host;
    const worker = { id, pid: outcome.started?.pid ?? 0 };
    const end = { index, job: id, host, started, finished: new Date() };
    const settle = (ok: boolean) => {
      phase[index] = ok ? "done" : "failed";
      report();
    };
    if (outcome.kind === "cancelled") {
      settle(false);
      return { ...end, result: { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker, peakRss: outcome.peakRss } };
    }
    if (outcome.kind === "ended") {
      settle(false);
      const error = endedJobError({
        step: `${req.step}[${index}]`,
        job: id,
        info: outcome.status.info,
        output: readOutputTail(job.outputFile?.replace(/%a/g, String(index))),
        memory: req.memory,
        timeoutMs: req.timeoutMs,
        peakRss: outcome.peakRss,
        node: outcome.started?.host,
        pid: outcome.started?.pid,
      });
      return { ...end, error, peakRss: outcome.peakRss };
    }
    const r = outcome.result;
    settle(r.status === "done");
    if (r.status === "failed") return { ...end, result: { status: "failed", error: r.error, worker, peakRss: r.peakRss } };
    const { specs, frames } = await loadValues(backend, r.outputs, `step \`${req.step}[${index}]\` output`);
    return { ...end, result: { status: "done", outputs: specs, pieces: frames, stubs: r.stubs, worker, peakRss: r.peakRss } };
  };

  const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => watchOne(i)));
  if (req.signal.aborted) process.stderr.write(`step \`${req.step}\`: interrupted; Slurm array job ${job.id} was cancelled with scancel\n`);
  return { job: job.id, elements: outcomes };
}

/**
 * `%%step … --on slurm --foreach EXPR [--parallel N]`: the items as ONE Slurm
 * job array (`sbatch --array=0-(n-1)%N`), so the cluster sees one job, the
 * user one id to scancel, and Slurm itself enforces the parallelism.
 *
 * Element i runs task `<base>-i` (script.ts). The tasks, the watching and
 * the element results are the remote transport's (remote/array.ts, shared
 * with AWS Batch arrays); what is Slurm's here is the shared
 * `scontrol show job <array>` poll (a thousand elements must not mean a
 * thousand scontrol calls per second) and what an ending without a result
 * means.
 */
import { display } from "../../client/display";
import type { EncodedValues } from "../../worker/codec";
import type { StepEvent, StepProgram } from "../../worker/events";
import { cancelledElement, elementResult, putElementTasks, watchElements, type ElementOutcome } from "../remote/array";
import type { Launcher } from "../remote/kernel-side";
import { UnreachableLazyInput } from "../../worker/remote/values";
import { lazyInputError } from "../remote/lazy-input-error";
import { sacctJob, showJob, type JobInfo } from "./commands";
import { describe, jobEnding, SlurmLauncher, type SlurmStatus } from "./launcher";
import { submitOrExplain } from "./submit";
import { cellSlurmSetup, SlurmStepError } from "./run";

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
  /** The foreach item of each element (a retry round runs some items again); element i runs item i by default. Outcomes and events carry item indices. */
  items?: number[];
  /** A retry round: its attempt number, said when the array is submitted. */
  attempt?: { n: number; of: number };
}

export type { ElementOutcome } from "../remote/array";

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
  const { settings, backend } = cellSlurmSetup(req.step, req.partition, req.cwd);
  // tasks/<base>/ exists once written: the array's output files (slurm-%A_%a.out) go there, and Slurm won't create directories.
  const { base, task } = await putElementTasks(backend, req).catch((e: unknown) => {
    throw e instanceof UnreachableLazyInput ? new SlurmStepError(lazyInputError(req.step, e, "Slurm")) : e;
  });

  const parallel = req.parallel !== undefined && req.parallel < n ? `%${req.parallel}` : "";
  const launcher = new SlurmLauncher(settings, { memory: req.memory, cpu: req.cpu, gpu: req.gpu, timeoutMs: req.timeoutMs, array: `0-${n - 1}${parallel}` });
  const job = await submitOrExplain(
    launcher,
    task,
    { step: req.step, memory: req.memory, cpu: req.cpu, gpu: req.gpu, partition: settings.partition },
    (f) => new SlurmStepError(f),
  );
  req.onSubmitted?.(job.id);
  const item = (i: number) => req.items?.[i] ?? i;
  const which = req.items ? ` (item${n === 1 ? "" : "s"} ${req.items.join(", ")}${req.attempt ? `, attempt ${req.attempt.n} of ${req.attempt.of}` : ""})` : "";
  display
    .create()
    .text(
      `Slurm array job ${job.id}: ${n} item${n === 1 ? "" : "s"}${which}${parallel ? `, at most ${req.parallel} at once` : ""}${settings.partition ? ` in partition ${settings.partition}` : ""}`,
    );

  const watched = await watchElements<SlurmStatus>({
    backend,
    base,
    task,
    n,
    items: req.items,
    launcher: new ElementLauncher(new ArrayStates(job.id), launcher),
    signal: req.signal,
    onEvent: (i, e) => req.onEvent(item(i), e),
    onCounts: req.onCounts,
  });
  const outcomes = await Promise.all(
    watched.map(async ({ index, started, finished, outcome }): Promise<ElementOutcome> => {
      const id = `${job.id}_${index}`;
      const host = outcome.status?.info?.nodes || outcome.started?.host;
      const worker = { id, pid: outcome.started?.pid ?? 0 };
      const end = { index: item(index), job: id, host, started, finished };
      if (outcome.kind === "cancelled") return { ...end, result: cancelledElement(worker, outcome.peakRss) };
      if (outcome.kind === "ended") {
        const failure = jobEnding(`${req.step}[${item(index)}]`, id, job.outputFile?.replace(/%a/g, String(index)), outcome.status.info, req, outcome);
        return { ...end, failure, peakRss: outcome.peakRss };
      }
      return { ...end, result: await elementResult(backend, `${req.step}[${item(index)}]`, outcome.result, worker) };
    }),
  );
  if (req.signal.aborted) process.stderr.write(`step \`${req.step}\`: interrupted; Slurm array job ${job.id} was cancelled with scancel\n`);
  return { job: job.id, elements: outcomes };
}

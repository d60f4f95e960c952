/**
 * `%%step … --on batch --foreach EXPR`: the items as ONE AWS Batch array job
 * (`arrayProperties.size` = the number of items), so the account sees one
 * job, the user one id, and interrupting terminates them all at once.
 *
 * Every child runs the same command; the kernel submits the array for the
 * base task id with NBSCALE_TASK_ARRAY=1, and each child's worker picks task
 * `<base>-<AWS_BATCH_JOB_ARRAY_INDEX>` (worker/remote-main.ts). One item is a
 * plain job (Batch's arrays start at two children).
 *
 * The tasks, the watching and the results are the remote transport's
 * (remote/array.ts, shared with Slurm arrays). What is Batch's here: one
 * DescribeJobs of all children (100 a call) shared by every element's
 * watcher, and what a child that ended without a result means.
 */
import { DescribeJobsCommand, SubmitJobCommand, TerminateJobCommand, type BatchClient, type JobDetail } from "@aws-sdk/client-batch";
import { failure as stepFailure } from "../step-failure";
import type { StorageBackend } from "../../store/backend";
import type { EncodedValues } from "../../worker/codec";
import type { StepEvent, StepProgram } from "../../worker/events";
import { cancelledElement, elementResult, putElementTasks, watchElements, type ElementCounts, type ElementOutcome } from "../remote/array";
import type { Launcher } from "../remote/kernel-side";
import { failureFacts, jobFailure } from "./failure";
import type { BatchStatus } from "./launcher";
import { lastLogLines } from "./logs";
import type { BatchSettings } from "./settings";
import { jobAttempts, submitJobInput } from "./submit";
import { runnableHint } from "./view";
import { FINAL_STATES } from "./watch";

type Inputs = Pick<EncodedValues, "specs" | "frames">;

/** What BatchBackend has ready before a submission (run.ts). */
export interface Prepared {
  settings: BatchSettings;
  client: BatchClient;
  backend: StorageBackend;
  jobDefinition: string;
  depsLock?: string;
  passthrough: Record<string, string>;
  /** NBSCALE_WORKER_PACKAGE for the job (worker-package.ts). */
  workerPackage?: string;
}

export interface BatchArrayRequest {
  step: string;
  memory?: number;
  cpu?: number;
  gpu?: number;
  timeoutMs?: number;
  retries?: number;
  queue?: string;
  image?: string;
  env: Record<string, string>;
  program: StepProgram;
  common: Inputs;
  perItem: Inputs[];
  signal: AbortSignal;
  /** The cell's own output (warnings, the interrupt notice). */
  onEvent(e: StepEvent): void;
  /** Output of item `index`. */
  onItemEvent(index: number, e: StepEvent): void;
  /** The array job was submitted. */
  onSubmitted?(job: string): void;
  onCounts(c: ElementCounts): void;
}

export interface BatchArrayResult {
  /** The array job's id (children are `<id>:<index>`). */
  job: string;
  elements: ElementOutcome[];
}

/** DescribeJobs takes at most 100 ids a call. */
const DESCRIBE_BATCH = 100;
const QUEUED = new Set(["SUBMITTED", "PENDING", "RUNNABLE", "STARTING"]);
/** After a child ended, how long its result may take to become visible (ms). */
const RESULT_GRACE_MS = 5_000;

export function childJobId(parent: string, index: number, n: number): string {
  return n >= 2 ? `${parent}:${index}` : parent;
}

/** One DescribeJobs round for all children, at most every `minMs`, shared by their watchers. */
export class ChildStates {
  private last = 0;
  private inflight: Promise<Map<string, JobDetail>> | null = null;
  private cached = new Map<string, JobDetail>();

  constructor(
    private readonly client: BatchClient,
    private readonly ids: string[],
    /** After every round: the children as DescribeJobs told (a cell's RUNNABLE hint). */
    private readonly onPoll?: (jobs: Map<string, JobDetail>) => void,
    private readonly minMs = 1000,
  ) {}

  async get(): Promise<Map<string, JobDetail>> {
    if (this.inflight) return this.inflight;
    if (Date.now() - this.last < this.minMs) return this.cached;
    this.inflight = (async () => {
      try {
        const m = new Map<string, JobDetail>();
        for (let i = 0; i < this.ids.length; i += DESCRIBE_BATCH) {
          const r = await this.client.send(new DescribeJobsCommand({ jobs: this.ids.slice(i, i + DESCRIBE_BATCH) }));
          for (const j of r.jobs ?? []) if (j.jobId) m.set(j.jobId, j);
        }
        this.last = Date.now();
        this.onPoll?.(m);
        return (this.cached = m);
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }
}

/** The launcher each element's watcher sees: status from the shared poll, cancel = TerminateJob of the whole array. */
export class ChildLauncher implements Launcher<number, BatchStatus> {
  private cancelling: Promise<void> | null = null;

  constructor(
    private readonly client: BatchClient,
    private readonly parent: string,
    private readonly n: number,
    private readonly states: ChildStates,
  ) {}

  submit(): Promise<number> {
    throw new Error("array children are submitted together");
  }

  async status(index: number): Promise<BatchStatus> {
    const job = (await this.states.get()).get(childJobId(this.parent, index, this.n));
    const state = job?.status ?? "SUBMITTED";
    return { phase: FINAL_STATES.has(state) ? "ended" : QUEUED.has(state) ? "queued" : "running", label: state, job };
  }

  cancel(): Promise<void> {
    // Terminating the parent terminates every child, whatever its state.
    this.cancelling ??= this.client
      .send(new TerminateJobCommand({ jobId: this.parent, reason: "interrupted from the notebook (nbscale)" }))
      .then(() => undefined);
    return this.cancelling;
  }
}

export async function runBatchArray(p: Prepared, req: BatchArrayRequest): Promise<BatchArrayResult> {
  const n = req.perItem.length;
  const { base, task } = await putElementTasks(p.backend, req);
  const maxAttempts = jobAttempts(req.retries);
  const input = submitJobInput({
    step: req.step,
    queue: p.settings.queue,
    jobDefinition: p.jobDefinition,
    datastore: p.settings.datastore.path,
    task: n >= 2 ? base : `${base}-0`,
    arraySize: n >= 2 ? n : undefined,
    memory: req.memory,
    cpu: req.cpu,
    gpu: req.gpu,
    timeoutMs: req.timeoutMs,
    retries: req.retries,
    env: req.env,
    depsLock: p.depsLock,
    passthrough: p.passthrough,
    workerPackage: p.workerPackage,
  });
  const parent = (await p.client.send(new SubmitJobCommand(input))).jobId!;
  req.onSubmitted?.(parent);
  const ids = Array.from({ length: n }, (_, i) => childJobId(parent, i, n));
  // The same hint as a single job's, once, when some child waits RUNNABLE too long.
  const runnableSince = new Map<string, number>();
  let hinted = false;
  const watchQueue = (jobs: Map<string, JobDetail>) => {
    const now = Date.now();
    for (const [id, j] of jobs) {
      if (j.status !== "RUNNABLE") runnableSince.delete(id);
      else if (!runnableSince.has(id)) runnableSince.set(id, now);
    }
    if (!hinted && [...runnableSince.values()].some((t) => now - t >= p.settings.runnableHintMs)) {
      hinted = true;
      req.onEvent({ type: "stream", name: "stderr", text: runnableHint(parent, p.settings.queue, req) });
    }
  };

  const watched = await watchElements<BatchStatus>({
    backend: p.backend,
    base,
    task,
    n,
    launcher: new ChildLauncher(p.client, parent, n, new ChildStates(p.client, ids, watchQueue)),
    signal: req.signal,
    onEvent: req.onItemEvent,
    onCounts: req.onCounts,
    maxAttempts,
    onAttempt: (i, attempt, started) =>
      req.onItemEvent(i, {
        type: "stream",
        name: "stderr",
        text: `attempt ${attempt - 1} of ${maxAttempts} was lost; AWS Batch retried it: attempt ${attempt} runs on ${started.host}\n`,
      }),
    statusMs: 1000,
    maxStatusMs: p.settings.maxPollMs,
    endGraceMs: RESULT_GRACE_MS,
  });
  const elements = await Promise.all(
    watched.map(async ({ index, started, finished, outcome }): Promise<ElementOutcome> => {
      const id = ids[index];
      const label = `${req.step}[${index}]`;
      const worker = { id, pid: outcome.started?.pid ?? 0 };
      const end = { index, job: id, host: outcome.started?.host, started, finished };
      if (outcome.kind === "cancelled") return { ...end, result: cancelledElement(worker, outcome.peakRss) };
      if (outcome.kind === "result") return { ...end, result: await elementResult(p.backend, label, outcome.result, worker, outcome.attempt) };
      const job = outcome.status.job;
      if (job?.status === "SUCCEEDED") {
        const failure = stepFailure(
          "worker-died",
          "BatchJobFailed",
          `step \`${label}\`: AWS Batch job ${id} SUCCEEDED but its worker left no result in ${p.settings.datastore.path}`,
          ["(did the image run something other than the job definition's command? check --image and the job's log)"],
          { job: id },
        );
        return { ...end, failure, peakRss: outcome.peakRss };
      }
      const facts = failureFacts(job ?? {});
      const failure = jobFailure(facts, {
        step: label,
        jobId: id,
        memory: req.memory,
        timeoutMs: req.timeoutMs,
        logTail: await lastLogLines(facts.logStream),
      });
      return { ...end, failure, peakRss: outcome.peakRss };
    }),
  );
  if (req.signal.aborted) {
    req.onEvent({
      type: "stream",
      name: "stderr",
      text: `step \`${req.step}\`: interrupted; AWS Batch array job ${parent} was terminated (TerminateJob sent)\n`,
    });
  }
  return { job: parent, elements };
}

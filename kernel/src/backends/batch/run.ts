/**
 * `--on batch`: one step as one AWS Batch job.
 *
 *   1. refuse a bad setup before anything is uploaded (settings, region,
 *      credentials, bucket, queue, what the queue can ever run, Lazy inputs
 *      the job can't read);
 *   2. register the job definition (once per content), settle where the
 *      container gets nbscale (worker-package.ts) and upload the task —
 *      program and inputs, content-addressed — through the remote transport;
 *   3. submit, then follow the job's state in the cell (view.ts) while the
 *      transport streams the worker's output from the event log it appends,
 *      following a retried attempt's own log (--retries is Batch's);
 *   4. the worker's result in the datastore is what counts: the job's
 *      terminal state only matters when no result came (FAILED → its
 *      reasons, memory advice, last log lines).
 *
 * Interrupting the cell terminates the job (TerminateJob) and says so.
 * `--foreach` goes through the same preparation to one array job (array.ts).
 */
import { BatchClient } from "@aws-sdk/client-batch";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { failure, notStarted } from "../step-failure";
import type { StepBackend, StepRequest } from "../step-backend";
import type { StorageBackend } from "../../store/backend";
import { backendFor } from "../../store/backends";
import { resolveDatastore, type DatastoreLocation } from "../../store/location";
import { VERSION } from "../../version";
import type { ValueSpec } from "../../worker/events";
import type { TaskResult } from "../local-pool";
import { putTask, watchTask } from "../remote/kernel-side";
import { checkLazyInputs, loadValues, UnreachableLazyInput } from "../../worker/remote/values";
import { lazyInputError } from "../remote/lazy-input-error";
import { depsManifestKey, sha256Hex } from "./bootstrap";
import { checkQueue } from "./capacity";
import { failureFacts, jobFailure } from "./failure";
import { JobDefinitions } from "./jobdef";
import { BatchLauncher } from "./launcher";
import { lastLogLines } from "./logs";
import { BatchStepError } from "./errors";
import { checkBucket, checkRegionAndCredentials, nbscalePublished } from "./preflight";
import { BatchConfigError, resolveBatchSettings, type BatchSettings } from "./settings";
import { runBatchArray, type BatchArrayRequest, type BatchArrayResult, type Prepared } from "./array";
import { jobAttempts, submitJobInput } from "./submit";
import { packageChoice, resolveWorkerPackage, type WorkerPackage } from "./worker-package";
import { packageDir } from "../slurm/run";
import { JobView, runnableHint } from "./view";

export { BatchStepError } from "./errors";

/** A step's attempt as the Batch backend runs it: the request, and the interrupt's signal. */
export type BatchStep = StepRequest & {
  /** Aborted when the cell is interrupted. */
  signal: AbortSignal;
};

/** What the checks before a submission look at. */
type PrepareInput = Pick<BatchStep, "step" | "memory" | "cpu" | "gpu" | "queue" | "image" | "onEvent">;

export interface BatchHost {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The notebook's folder: its package-lock.json is installed in the job. */
  notebookDir: string;
}

/** Settings the job sees as the kernel does: a custom endpoint (LocalStack, moto) and the region. */
const PASSTHROUGH = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"];
/** After the job ended, how long its result may take to become visible (S3 is read-after-write; this is margin). */
const RESULT_GRACE_MS = 5_000;

/**
 * `--on batch` as a StepBackend; one per kernel (keeps registered job
 * definitions across steps). Batch retries an attempt itself (the job's
 * retryStrategy, from --retries), so the runtime makes one attempt. No
 * `check`: a queue's limits need AWS, so run checks them before it uploads.
 */
export class BatchBackend implements StepBackend {
  readonly target = "batch";
  readonly retriesItself = true;
  private client: BatchClient | null = null;
  private defs: JobDefinitions | null = null;
  private readonly saidPackage = new Set<string>();
  private abort: AbortController | null = null;

  constructor(private readonly host: BatchHost) {}

  async run(req: StepRequest): Promise<TaskResult> {
    this.abort = new AbortController();
    const s: BatchStep = { ...req, signal: this.abort.signal };
    try {
      return await this.awsErrors(s.step, () => this.runJob(s));
    } finally {
      this.abort = null;
    }
  }

  /** The interrupt: TerminateJob for the running job. */
  stop(): void {
    this.abort?.abort();
  }

  private async awsErrors<T>(step: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      // An AWS answer we did not expect (a permission, a limit, a refused request) still reads as one.
      if (e instanceof BatchStepError || !isAwsError(e)) throw e;
      const err = e as Error & { $metadata?: { httpStatusCode?: number } };
      throw new BatchStepError(
        failure("worker-died", "BatchError", `step \`${step}\`: AWS said ${err.name}: ${err.message}`, [`(HTTP ${err.$metadata?.httpStatusCode ?? "?"})`]),
      );
    }
  }

  /**
   * Everything before a submission: the checks, the job definition, the
   * notebook folder's lockfile; Lazy inputs the job can't read are refused
   * before anything is registered.
   */
  private async prepare(s: PrepareInput, specs: readonly ValueSpec[]): Promise<Prepared> {
    const settings = await this.preflight(s);
    const backend = backendFor(settings.datastore);
    try {
      await checkLazyInputs(backend, specs);
    } catch (e) {
      if (e instanceof UnreachableLazyInput) throw new BatchStepError(lazyInputError(s.step, e, "AWS Batch"));
      throw e;
    }
    const jobDefinition = await this.defs!.ensure({ image: settings.image, nbscaleVersion: VERSION, jobRoleArn: settings.jobRoleArn });
    const workerPackage = await this.workerPackage(s, settings, backend);
    const depsLock = await this.uploadDeps(backend);
    const passthrough: Record<string, string> = {};
    for (const k of PASSTHROUGH) if (this.host.env[k]) passthrough[k] = this.host.env[k]!;
    return { settings, client: this.client!, backend, jobDefinition, depsLock, passthrough, workerPackage: workerPackage.spec };
  }

  /**
   * What the job installs when its image lacks the kernel's nbscale
   * (worker-package.ts); where that is, is said once per kernel and source.
   */
  private async workerPackage(s: PrepareInput, settings: BatchSettings, backend: StorageBackend): Promise<WorkerPackage> {
    let pkg: WorkerPackage;
    try {
      pkg = await resolveWorkerPackage({
        env: this.host.env,
        version: VERSION,
        packageDir: packageDir(),
        backend,
        datastore: settings.datastore,
        published: () => nbscalePublished(VERSION, this.host.env),
      });
    } catch (e) {
      throw new BatchStepError(
        notStarted(
          "BatchConfigError",
          `step \`${s.step}\` was not sent to AWS Batch: the kernel's nbscale package could not be made ready for the job (${(e as Error).message})`,
          ["(setting: NBSCALE_WORKER_PACKAGE; set it to an npm install spec the job can reach, e.g. a tarball URL, or use --image with nbscale installed)"],
        ),
      );
    }
    if (settings.imageIsDefault && !this.saidPackage.has(pkg.from)) {
      this.saidPackage.add(pkg.from);
      s.onEvent({
        type: "stream",
        name: "stderr",
        text: `note: the job's image (${settings.image}) installs nbscale ${VERSION} from ${pkg.from} (NBSCALE_WORKER_PACKAGE, docs/batch.md)\n`,
      });
    }
    return pkg;
  }

  /** `--foreach` on Batch: the items as one array job (array.ts). */
  async runArray(req: BatchArrayRequest): Promise<BatchArrayResult> {
    return await this.awsErrors(req.step, async () => {
      const prepared = await this.prepare(req, req.common.specs);
      return await runBatchArray(prepared, req);
    });
  }

  private async runJob(s: BatchStep): Promise<TaskResult> {
    const { settings, client, backend, jobDefinition, depsLock, passthrough, workerPackage } = await this.prepare(s, s.inputs.specs);
    if (s.signal.aborted) return interrupted("");
    const { task } = await putTask(backend, { step: s.step, attempt: s.attempt, env: s.env, program: s.program, inputs: s.inputs, memory: s.memory });

    const maxAttempts = jobAttempts(s.retries);
    const view = new JobView(settings.queue, maxAttempts, s.status ?? null);
    let hinted = false;
    const launcher = new BatchLauncher(
      client,
      (t) =>
        submitJobInput({
          step: s.step,
          queue: settings.queue,
          jobDefinition,
          datastore: settings.datastore.path,
          task: t.id,
          memory: s.memory,
          cpu: s.cpu,
          gpu: s.gpu,
          timeoutMs: s.timeoutMs,
          retries: s.retries,
          env: s.env,
          depsLock,
          passthrough,
          workerPackage,
        }),
      (st, timeline) => {
        if (!hinted && st.label === "RUNNABLE" && timeline.inState(Date.now()) >= settings.runnableHintMs) {
          hinted = true;
          s.onEvent({ type: "stream", name: "stderr", text: runnableHint(jobId, settings.queue, s) });
        }
        view.show(timeline, st.job);
      },
    );
    const jobId = await launcher.submit(task);
    view.submitted(jobId, launcher.timeline);

    const outcome = await watchTask({
      backend,
      task,
      launcher,
      job: jobId,
      onEvent: s.onEvent,
      onStatus: () => undefined,
      signal: s.signal,
      statusMs: 1000,
      maxStatusMs: settings.maxPollMs,
      endGraceMs: RESULT_GRACE_MS,
      maxAttempts,
      onAttempt: (n, started) => {
        view.retried(n, launcher.timeline);
        s.onEvent({
          type: "stream",
          name: "stderr",
          text: `step \`${s.step}\`: attempt ${n - 1} of ${maxAttempts} was lost; AWS Batch retried the job: attempt ${n} of ${maxAttempts} runs on ${started.host}\n`,
        });
      },
    });
    const worker = { id: jobId, pid: 0 };
    const attempts = outcome.attempt;
    switch (outcome.kind) {
      case "cancelled":
        view.show(launcher.timeline);
        s.onEvent({ type: "stream", name: "stderr", text: `step \`${s.step}\`: interrupted; AWS Batch job ${jobId} was terminated (TerminateJob sent)\n` });
        return { ...interrupted(jobId), attempts };
      case "result": {
        const r = outcome.result;
        view.show(launcher.timeline, undefined, outcome.status && outcome.status.phase !== "ended" ? " (result received)" : "");
        if (attempts > 1 && r.status === "done") {
          s.onEvent({ type: "stream", name: "stderr", text: `step \`${s.step}\` succeeded on attempt ${attempts} of ${maxAttempts}\n` });
        }
        if (r.status === "failed") return { status: "failed", error: r.error, worker, peakRss: r.peakRss, attempts };
        const { specs, frames } = await loadValues(backend, r.outputs, `output of step \`${s.step}\``);
        return { status: "done", outputs: specs, pieces: frames, stubs: r.stubs, worker, peakRss: r.peakRss, attempts };
      }
      case "ended": {
        view.show(launcher.timeline, outcome.status.job);
        const job = outcome.status.job;
        if (job?.status === "SUCCEEDED") {
          throw new BatchStepError(
            failure(
              "worker-died",
              "BatchJobFailed",
              `step \`${s.step}\`: AWS Batch job ${jobId} SUCCEEDED but its worker left no result in ${settings.datastore.path} (task ${task.id})`,
              ["(did the image run something other than the job definition's command? check --image and the job's log)"],
              { job: jobId },
            ),
            jobId,
          );
        }
        const facts = failureFacts(job ?? {});
        const logTail = await lastLogLines(facts.logStream);
        const e = jobFailure(facts, { step: s.step, jobId, memory: s.memory, timeoutMs: s.timeoutMs, logTail });
        const tried = Math.max(attempts, facts.attempts);
        throw new BatchStepError(
          maxAttempts > 1 ? { ...e, details: [...e.details, `(attempt ${tried} of ${maxAttempts}: AWS Batch made no further attempt)`] } : e,
          jobId,
        );
      }
    }
  }

  private async preflight(s: PrepareInput): Promise<BatchSettings> {
    try {
      let loc: DatastoreLocation;
      try {
        loc = resolveDatastore({ env: this.host.env, cwd: this.host.cwd, notebookDir: this.host.notebookDir });
      } catch (e) {
        throw new BatchConfigError("NBSCALE_DATASTORE", (e as Error).message);
      }
      const settings = resolveBatchSettings({ queue: s.queue, image: s.image, env: this.host.env, datastore: loc });
      packageChoice(this.host.env);
      this.client ??= new BatchClient({});
      this.defs ??= new JobDefinitions(this.client);
      await checkRegionAndCredentials(this.client);
      await checkBucket(settings.datastore.bucket, settings.datastore.path);
      await checkQueue(this.client, settings.queue, settings.queueFrom, { memory: s.memory, cpu: s.cpu, gpu: s.gpu });
      return settings;
    } catch (e) {
      if (e instanceof BatchConfigError) {
        throw new BatchStepError(
          notStarted("BatchConfigError", `step \`${s.step}\` was not sent to AWS Batch: ${e.message}`, [
            `(setting: ${e.setting}; nothing was uploaded or submitted)`,
          ]),
        );
      }
      throw e;
    }
  }

  /** The notebook folder's package.json + package-lock.json, stored under the lockfile's hash. */
  private async uploadDeps(backend: StorageBackend): Promise<string | undefined> {
    const lockPath = join(this.host.notebookDir, "package-lock.json");
    const pkgPath = join(this.host.notebookDir, "package.json");
    if (!existsSync(lockPath) || !existsSync(pkgPath)) return undefined;
    const lock = readFileSync(lockPath);
    const sha = sha256Hex(lock);
    // Under the lockfile's hash: written once, the same for every later job.
    await backend.putIfAbsent(depsManifestKey(sha, "package-lock.json"), [lock]);
    await backend.putIfAbsent(depsManifestKey(sha, "package.json"), [readFileSync(pkgPath)]);
    return sha;
  }
}

function isAwsError(e: unknown): boolean {
  return typeof e === "object" && e !== null && "$metadata" in e;
}

function interrupted(jobId: string): TaskResult {
  return { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker: { id: jobId, pid: 0 }, peakRss: 0 };
}

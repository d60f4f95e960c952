/**
 * Flow steps on AWS Batch: one step (or foreach item) = one SubmitJob to the
 * step's queue (`queue:` in the flow, else NBSCALE_BATCH_QUEUE) with its
 * memory/cpu/gpu as `containerOverrides.resourceRequirements`, its timeout,
 * and its env, on the job definition the kernel uses (registered once per
 * image and nbscale version; no Dockerfile). The run's datastore must be in
 * S3: the job reads the flow module, the task and the inputs from it and
 * records the execution there.
 *
 * Preflight refuses, before anything is uploaded, exactly what the kernel
 * refuses for `%%step --on batch` (backends/batch/preflight.ts, capacity.ts):
 * no queue, a local datastore, no region or credentials, a missing bucket, a
 * queue that can never run the step's resources.
 *
 * Retries are the runner's (each attempt is a fresh job on a fresh task), not
 * Batch's retryStrategy: a retried Batch job would find its task started.
 */
import { BatchClient, SubmitJobCommand } from "@aws-sdk/client-batch";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { depsManifestKey, sha256Hex } from "../backends/batch/bootstrap";
import { checkQueue } from "../backends/batch/capacity";
import { failureFacts, jobFailure } from "../backends/batch/failure";
import { JobDefinitions } from "../backends/batch/jobdef";
import { BatchLauncher, type BatchStatus } from "../backends/batch/launcher";
import { lastLogLines } from "../backends/batch/logs";
import { checkBucket, checkRegionAndCredentials, nbscalePublished } from "../backends/batch/preflight";
import { BatchConfigError, resolveBatchSettings, type BatchSettings } from "../backends/batch/settings";
import { submitJobInput, type JobRequest } from "../backends/batch/submit";
import { ChildLauncher, ChildStates, childJobId } from "../backends/batch/array";
import { resolveWorkerPackage, type WorkerPackage } from "../backends/batch/worker-package";
import { packageDir } from "../backends/slurm/run";
import { failure, notStarted, type StepFailure } from "../backends/step-failure";
import type { SubmittedTask } from "../backends/remote/kernel-side";
import type { StorageBackend } from "../store/backend";
import { backendFor } from "../store/backends";
import type { DatastoreLocation } from "../store/location";
import { parseSize } from "../magics/units";
import { VERSION } from "../version";
import type { StepDef } from "./api";
import { RemoteSetupError, SubmitRefused, type RemoteJob, type RemoteTarget, type StepResources } from "./remote-launcher";

/** Settings the job sees as `nbscale run` does: a custom endpoint (LocalStack, moto) and the region. */
const PASSTHROUGH = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"];
const RESULT_GRACE_MS = 5_000;

const key = (s: { queue?: string; image?: string }): string => `${s.queue ?? ""}\u0000${s.image ?? ""}`;

export class BatchTarget implements RemoteTarget {
  readonly name = "batch";
  private readonly defs: JobDefinitions;
  private depsLock: Promise<string | undefined> | null = null;
  /** Where the jobs' nbscale comes from, once said. */
  private readonly said = new Set<string>();

  private constructor(
    private readonly client: BatchClient,
    private readonly bySettings: Map<string, BatchSettings>,
    private readonly flowDir: string,
    private readonly backend: StorageBackend,
  ) {
    this.defs = new JobDefinitions(client);
  }

  static async preflight(steps: readonly StepDef[], datastore: DatastoreLocation, flowDir: string): Promise<BatchTarget> {
    const bySettings = new Map<string, BatchSettings>();
    let client: BatchClient | null = null;
    const checked = new Set<string>();
    for (const s of steps) {
      try {
        const settings = resolveBatchSettings({ queue: s.settings.queue, image: s.settings.image, env: process.env, datastore });
        bySettings.set(key(s.settings), settings);
        if (!client) {
          client = new BatchClient({});
          await checkRegionAndCredentials(client);
          await checkBucket(settings.datastore.bucket, settings.datastore.path);
        }
        const memory = s.settings.memory !== undefined ? parseSize(s.settings.memory) : undefined;
        const ask = { memory, cpu: s.settings.cpu, gpu: s.settings.gpu };
        const once = JSON.stringify([settings.queue, ask]);
        if (!checked.has(once)) {
          checked.add(once);
          await checkQueue(client, settings.queue, settings.queueFrom, ask);
        }
      } catch (e) {
        if (e instanceof BatchConfigError) {
          throw new RemoteSetupError(
            `step ${s.name} was not sent to AWS Batch: ${e.message} (setting: ${e.setting}; nothing was uploaded or submitted). Or run it here with \`--on local\`.`,
          );
        }
        throw e;
      }
    }
    return new BatchTarget(client!, bySettings, flowDir, backendFor(datastore));
  }

  /** What every job of the run shares: the definition, the lockfile, the nbscale package to install, the endpoint. */
  private async prepare(settings: BatchSettings): Promise<{ input: Omit<JobRequest, "step" | "task" | "env">; notice?: string }> {
    const jobDefinition = await this.defs.ensure({ image: settings.image, nbscaleVersion: VERSION, jobRoleArn: settings.jobRoleArn });
    this.depsLock ??= this.uploadDeps();
    const depsLock = await this.depsLock;
    let pkg: WorkerPackage;
    try {
      pkg = await resolveWorkerPackage({
        env: process.env,
        version: VERSION,
        packageDir: packageDir(),
        backend: this.backend,
        datastore: settings.datastore,
        published: () => nbscalePublished(VERSION, process.env),
      });
    } catch (e) {
      throw new SubmitRefused(
        notStarted(
          "BatchConfigError",
          `the flow's AWS Batch steps were not sent: nbscale's package could not be made ready for the job (${(e as Error).message})`,
          [
            "(setting: NBSCALE_WORKER_PACKAGE; set it to an npm install spec the job can reach, e.g. a tarball URL, or `image:` to an image with nbscale installed)",
          ],
        ),
      );
    }
    const passthrough: Record<string, string> = {};
    for (const k of PASSTHROUGH) if (process.env[k]) passthrough[k] = process.env[k]!;
    // Said once per run and source, as the kernel says it once per kernel.
    const notice =
      settings.imageIsDefault && !this.said.has(pkg.from)
        ? `note: the job's image (${settings.image}) installs nbscale ${VERSION} from ${pkg.from} (NBSCALE_WORKER_PACKAGE, docs/batch.md)\n`
        : undefined;
    this.said.add(pkg.from);
    return {
      input: { queue: settings.queue, jobDefinition, datastore: settings.datastore.path, depsLock, passthrough, workerPackage: pkg.spec },
      ...(notice ? { notice } : {}),
    };
  }

  async submit(task: SubmittedTask, r: StepResources): Promise<RemoteJob<string, BatchStatus>> {
    const settings = this.bySettings.get(key(r.settings))!;
    const { input, notice } = await this.prepare(settings);
    const launcher = new BatchLauncher(
      this.client,
      (t) => submitJobInput({ ...input, step: t.step, task: t.id, memory: r.memory, cpu: r.cpu, gpu: r.gpu, timeoutMs: r.timeoutMs, env: r.env }),
      () => undefined,
    );
    const jobId = await launcher.submit(task);
    return {
      launcher,
      job: jobId,
      ...(notice ? { notice } : {}),
      label: `AWS Batch job ${jobId} (${settings.queue})`,
      statusMs: 1000,
      maxStatusMs: settings.maxPollMs,
      endGraceMs: RESULT_GRACE_MS,
      ended: (status) => endedWithoutResult(task.step, jobId, task.id, status, settings, r),
    };
  }

  /**
   * A foreach step's items as one array job (`arrayProperties.size`; every
   * child runs task `<base>-<AWS_BATCH_JOB_ARRAY_INDEX>`), watched through
   * one shared DescribeJobs of all children (backends/batch/array.ts). One
   * item is a plain job: Batch arrays start at two children.
   */
  async submitArray(task: SubmittedTask, n: number, r: StepResources): Promise<RemoteJob<number, BatchStatus>[]> {
    const settings = this.bySettings.get(key(r.settings))!;
    const { input, notice } = await this.prepare(settings);
    const request = submitJobInput({
      ...input,
      step: task.step,
      task: n >= 2 ? task.id : `${task.id}-0`,
      ...(n >= 2 ? { arraySize: n } : {}),
      memory: r.memory,
      cpu: r.cpu,
      gpu: r.gpu,
      timeoutMs: r.timeoutMs,
      env: r.env,
    });
    const parent = (await this.client.send(new SubmitJobCommand(request))).jobId!;
    const ids = Array.from({ length: n }, (_, i) => childJobId(parent, i, n));
    const children = new ChildLauncher(this.client, parent, n, new ChildStates(this.client, ids));
    return ids.map((id, index) => ({
      launcher: children,
      job: index,
      ...(notice && index === 0 ? { notice } : {}),
      label: `AWS Batch ${n >= 2 ? "array job" : "job"} ${id} (${settings.queue})`,
      statusMs: 1000,
      maxStatusMs: settings.maxPollMs,
      endGraceMs: RESULT_GRACE_MS,
      ended: (status: BatchStatus) => endedWithoutResult(`${task.step}[${index}]`, id, `${task.id}-${index}`, status, settings, r),
    }));
  }

  /** The flow folder's package.json + package-lock.json under the lockfile's hash, as the kernel uploads a notebook's. */
  private async uploadDeps(): Promise<string | undefined> {
    const lockPath = join(this.flowDir, "package-lock.json");
    const pkgPath = join(this.flowDir, "package.json");
    if (!existsSync(lockPath) || !existsSync(pkgPath)) return undefined;
    const lock = readFileSync(lockPath);
    const sha = sha256Hex(lock);
    await this.backend.putIfAbsent(depsManifestKey(sha, "package-lock.json"), [lock]);
    await this.backend.putIfAbsent(depsManifestKey(sha, "package.json"), [readFileSync(pkgPath)]);
    return sha;
  }
}

/** Why a job (or array child) ended with no result from its worker, in the user's terms. */
async function endedWithoutResult(
  step: string,
  jobId: string,
  taskId: string,
  status: BatchStatus,
  settings: BatchSettings,
  r: StepResources,
): Promise<StepFailure> {
  const job = status.job;
  if (job?.status === "SUCCEEDED") {
    return failure(
      "worker-died",
      "BatchJobFailed",
      `step \`${step}\`: AWS Batch job ${jobId} SUCCEEDED but its worker left no result in ${settings.datastore.path} (task ${taskId})`,
      ["(did the image run something other than the job definition's command? check `image:` and the job's log)"],
      { job: jobId },
    );
  }
  const facts = failureFacts(job ?? {});
  const logTail = await lastLogLines(facts.logStream).catch(() => []);
  const f = jobFailure(facts, { step, jobId, memory: r.memory, timeoutMs: r.timeoutMs, logTail });
  return facts.logStream ? { ...f, details: [...f.details, `[job log: CloudWatch Logs /aws/batch/job ${facts.logStream}]`] } : f;
}

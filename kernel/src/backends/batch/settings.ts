/**
 * What `--on batch` needs before anything is uploaded or submitted: a job
 * queue, a datastore in S3 (the job reads its inputs and writes its outputs
 * there), and an image. Every refusal names the setting and how to set it.
 *
 * Settings come from the `%%step` line first, then the kernel's environment:
 *   NBSCALE_BATCH_QUEUE     job queue name or ARN (or `--queue`)
 *   NBSCALE_BATCH_IMAGE     container image (or `--image`)
 *   NBSCALE_BATCH_JOB_ROLE  IAM role ARN the job runs as (S3 access to the datastore)
 *   NBSCALE_BATCH_RUNNABLE_HINT  how long RUNNABLE before the cell shows a hint (default 5m)
 *   NBSCALE_BATCH_POLL      longest pause between DescribeJobs calls (default 10s)
 */
import type { DatastoreLocation } from "../../store/location";
import { describeLocation } from "../../store/location";
import { parseDuration } from "../../magics/units";

/** The kernel's Node major: the default image runs the same one (serialized values are V8's format). */
export function defaultImage(nodeVersion = process.version): string {
  const major = /^v?(\d+)/.exec(nodeVersion)?.[1] ?? "20";
  return `public.ecr.aws/docker/library/node:${major}-bookworm-slim`;
}

export class BatchConfigError extends Error {
  constructor(
    /** The setting at fault, e.g. `NBSCALE_BATCH_QUEUE`. */
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = "BatchConfigError";
  }
}

export interface BatchSettings {
  queue: string;
  /** Where the queue came from, for messages. */
  queueFrom: string;
  image: string;
  /** No `--image` or NBSCALE_BATCH_IMAGE: the public Node image, which installs nbscale from npm. */
  imageIsDefault: boolean;
  jobRoleArn?: string;
  datastore: Extract<DatastoreLocation, { kind: "s3" }>;
  /** After this long in RUNNABLE the cell says why a job may be waiting (ms). */
  runnableHintMs: number;
  /** Longest pause between two DescribeJobs polls (ms). */
  maxPollMs: number;
}

export interface SettingsInput {
  queue?: string;
  image?: string;
  env: NodeJS.ProcessEnv;
  datastore: DatastoreLocation;
}

function duration(env: NodeJS.ProcessEnv, name: string, fallbackMs: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallbackMs;
  const ms = parseDuration(v);
  if (ms === undefined) throw new BatchConfigError(name, `${name}=${v} is not a duration; use e.g. 90s, 10m or 2h`);
  return ms;
}

/** Resolves the settings or throws a BatchConfigError; touches nothing remote. */
export function resolveBatchSettings(input: SettingsInput): BatchSettings {
  const { env } = input;
  const queue = input.queue ?? (env.NBSCALE_BATCH_QUEUE || undefined);
  if (!queue) {
    throw new BatchConfigError(
      "NBSCALE_BATCH_QUEUE",
      "no AWS Batch job queue: add `--queue NAME` to the %%step line, or set NBSCALE_BATCH_QUEUE=NAME in the environment the kernel starts in " +
        "(e.g. `NBSCALE_BATCH_QUEUE=my-queue jupyter lab`); `aws batch describe-job-queues` lists the queues of your account",
    );
  }
  const loc = input.datastore;
  if (loc.kind !== "s3") {
    throw new BatchConfigError(
      "NBSCALE_DATASTORE",
      `--on batch needs the datastore in S3, where the job reads the step's inputs and writes its outputs; it is now ${describeLocation(loc)}. ` +
        "Set NBSCALE_DATASTORE=s3://BUCKET/PREFIX in the environment the kernel starts in, and restart the kernel",
    );
  }
  const image = input.image ?? (env.NBSCALE_BATCH_IMAGE || defaultImage());
  return {
    queue,
    queueFrom: input.queue !== undefined ? `--queue ${queue}` : `NBSCALE_BATCH_QUEUE=${queue}`,
    image,
    imageIsDefault: input.image === undefined && !env.NBSCALE_BATCH_IMAGE,
    jobRoleArn: env.NBSCALE_BATCH_JOB_ROLE || undefined,
    datastore: loc,
    runnableHintMs: duration(env, "NBSCALE_BATCH_RUNNABLE_HINT", 5 * 60_000),
    maxPollMs: duration(env, "NBSCALE_BATCH_POLL", 10_000),
  };
}

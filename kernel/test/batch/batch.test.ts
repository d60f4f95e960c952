import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bootstrapScript, containerCommand, depsCacheKey } from "../../src/backends/batch/bootstrap";
import { environmentLimit, instanceLimit, unfit } from "../../src/backends/batch/capacity";
import { failureFacts, jobFailure, type FailureContext, type FailureFacts } from "../../src/backends/batch/failure";
import { failureError } from "../../src/step/failures";

const jobFailedError = (f: FailureFacts, c: FailureContext) => failureError(jobFailure(f, c));
import { jobDefinitionInput } from "../../src/backends/batch/jobdef";
import { BatchConfigError, defaultImage, resolveBatchSettings } from "../../src/backends/batch/settings";
import { submitJobInput } from "../../src/backends/batch/submit";
import { JobTimeline } from "../../src/backends/batch/watch";

const GiB = 2 ** 30;
const s3 = { kind: "s3" as const, path: "s3://b/p", bucket: "b", prefix: "p", source: "env" as const };

test("resources go as MEMORY in MiB, VCPU and GPU; timeout, retries and the worker's environment", () => {
  const input = submitJobInput({
    step: "train",
    queue: "q",
    jobDefinition: "nbscale-abc:1",
    datastore: "s3://b/p",
    task: "t1",
    memory: 64 * GiB,
    cpu: 16,
    gpu: 1,
    timeoutMs: 30_000,
    retries: 2,
    env: { SEED: "1", NBSCALE_TASK: "hijack" },
  });
  assert.deepEqual(input.containerOverrides?.resourceRequirements, [
    { type: "MEMORY", value: "65536" },
    { type: "VCPU", value: "16" },
    { type: "GPU", value: "1" },
  ]);
  assert.equal(input.timeout?.attemptDurationSeconds, 60, "Batch's minimum");
  assert.equal(input.retryStrategy?.attempts, 3);
  assert.deepEqual(
    input.retryStrategy?.evaluateOnExit?.map((e) => e.onExitCode ?? e.onReason),
    ["1", "2", "78", "OutOfMemoryError*"],
  );
  const env = Object.fromEntries((input.containerOverrides?.environment ?? []).map((e) => [e.name, e.value]));
  assert.equal(env.SEED, "1");
  assert.equal(env.NBSCALE_TASK, "t1", "a user's --env can't redirect the task");
  assert.equal(env.NBSCALE_DATASTORE, "s3://b/p");
  assert.match(env.NODE_OPTIONS!, /^--max-old-space-size=\d+$/);
});

test("job definitions are named by their content", () => {
  const a = jobDefinitionInput({ image: "node:20", nbscaleVersion: "0.1.0" });
  assert.equal(a.jobDefinitionName, jobDefinitionInput({ image: "node:20", nbscaleVersion: "0.1.0" }).jobDefinitionName);
  assert.notEqual(a.jobDefinitionName, jobDefinitionInput({ image: "node:22", nbscaleVersion: "0.1.0" }).jobDefinitionName);
  assert.notEqual(a.jobDefinitionName, jobDefinitionInput({ image: "node:20", nbscaleVersion: "0.1.1" }).jobDefinitionName);
  assert.deepEqual(a.containerProperties?.command?.slice(0, 2), ["sh", "-c"]);
  assert.equal(defaultImage("v20.11.1"), "public.ecr.aws/docker/library/node:20-bookworm-slim");
});

test("settings: queue and an S3 datastore are required, each refusal names its setting", () => {
  assert.throws(
    () => resolveBatchSettings({ env: {}, datastore: s3 }),
    (e: BatchConfigError) => e.setting === "NBSCALE_BATCH_QUEUE",
  );
  const fsLoc = { kind: "fs" as const, path: "/x/.nbscale", source: "default" as const };
  assert.throws(
    () => resolveBatchSettings({ queue: "q", env: {}, datastore: fsLoc }),
    (e: BatchConfigError) => e.setting === "NBSCALE_DATASTORE",
  );
  const s = resolveBatchSettings({ env: { NBSCALE_BATCH_QUEUE: "q", NBSCALE_BATCH_RUNNABLE_HINT: "2m" }, datastore: s3 });
  assert.equal(s.queue, "q");
  assert.equal(s.runnableHintMs, 120_000);
  assert.equal(s.imageIsDefault, true);
  assert.equal(resolveBatchSettings({ queue: "q", image: "mine:1", env: {}, datastore: s3 }).imageIsDefault, false);
  assert.equal(resolveBatchSettings({ queue: "q", env: { NBSCALE_BATCH_IMAGE: "mine:1" }, datastore: s3 }).image, "mine:1");
});

test("the container script passes hostile values through as data", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-boot-"));
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  // A fake nbscale of the right version: the script must skip npm and exec it with the values verbatim.
  fs.writeFileSync(path.join(bin, "nbscale"), `#!/bin/sh\nif [ "$1" = --version ]; then echo 9.9.9; exit 0; fi\nprintf '%s\\n' "$@" > "${dir}/args"\n`, {
    mode: 0o755,
  });
  const hostile = "s3://b/$(touch " + dir + "/pwned)`touch " + dir + "/pwned2`";
  const [sh, flag, script, name] = containerCommand("9.9.9");
  execFileSync(sh, [flag, script, name], {
    env: { PATH: `${bin}:${process.env.PATH}`, NBSCALE_DATASTORE: hostile, NBSCALE_TASK: "t; rm -rf /", NBSCALE_WORKDIR: path.join(dir, "work") },
  });
  assert.deepEqual(fs.readFileSync(path.join(dir, "args"), "utf8").split("\n").slice(0, 4), ["worker", "--task", hostile, "t; rm -rf /"]);
  assert.ok(!fs.existsSync(path.join(dir, "pwned")) && !fs.existsSync(path.join(dir, "pwned2")));
  assert.throws(() => bootstrapScript("1.0.0'; rm -rf /"));
});

test("the deps cache key is the lockfile's hash plus Node major, OS and CPU", () => {
  const sha = "a".repeat(64);
  assert.equal(depsCacheKey(sha, "v20.11.1", "linux", "arm64"), `batch/deps/${sha}/node_modules-node20-linux-arm64.tgz`);
  assert.notEqual(depsCacheKey(sha, "v20.1.0", "linux", "x64"), depsCacheKey(sha, "v22.1.0", "linux", "x64"));
});

test("capacity: what a compute environment can ever give, and a clear refusal", () => {
  assert.deepEqual(instanceLimit("m5.2xlarge"), { vcpus: 8, memory: 32 * GiB, gpus: 0 });
  assert.equal(instanceLimit("optimal"), null);
  const small = environmentLimit({
    computeEnvironmentName: "small",
    computeEnvironmentArn: "arn",
    type: "MANAGED",
    computeResources: { type: "EC2", maxvCpus: 64, instanceTypes: ["r5.xlarge", "c5.4xlarge"], subnets: [] },
  } as never);
  assert.deepEqual(small, { name: "small", vcpus: 16, memory: 32 * GiB, gpus: 0 });
  assert.equal(unfit({ cpu: 16, memory: 8 * GiB }, [small]), null);
  assert.match(unfit({ memory: 64 * GiB }, [small])!, /--memory 64G but at most 32G/);
  // An unmanaged environment: nothing known, nothing refused.
  assert.equal(unfit({ cpu: 512 }, [environmentLimit({ computeEnvironmentName: "u", type: "UNMANAGED" } as never)]), null);
});

test("FAILED: out of memory gets the same advice as locally; other reasons are quoted", () => {
  const oom = jobFailedError(
    failureFacts({
      statusReason: "Essential container in task exited",
      container: { reason: "OutOfMemoryError: Container killed due to memory usage", exitCode: 137 },
    }),
    {
      step: "train",
      jobId: "j1",
      memory: 8 * GiB,
      logTail: ["allocating"],
    },
  );
  assert.equal(oom.ename, "StepOutOfMemory");
  assert.match(oom.evalue, /re-run with `--memory 16G`/);
  assert.ok(oom.traceback.some((l) => l.includes("OutOfMemoryError")) && oom.traceback.some((l) => l.includes("| allocating")));
  const other = jobFailedError(failureFacts({ statusReason: "CannotPullContainerError: no such image" }), { step: "s", jobId: "j2", logTail: [] });
  assert.equal(other.ename, "BatchJobFailed");
  assert.match(other.evalue, /CannotPullContainerError/);
});

test("the timeline keeps the time in each state", () => {
  const t = new JobTimeline();
  t.observe("SUBMITTED", 0);
  t.observe("RUNNABLE", 400);
  t.observe("RUNNABLE", 900);
  t.observe("RUNNING", 12_400);
  assert.equal(t.text(15_500), "SUBMITTED 0.4 s → RUNNABLE 12 s → RUNNING 3.1 s");
  t.observe("TERMINATED", 16_000);
  assert.equal(t.text(99_000), "SUBMITTED 0.4 s → RUNNABLE 12 s → RUNNING 3.6 s → TERMINATED");
});

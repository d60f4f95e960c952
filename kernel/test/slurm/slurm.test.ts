import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { arrayIndices } from "../../src/backends/slurm/array";
import { parseKeyValues, type JobInfo } from "../../src/backends/slurm/commands";
import { endedJobFailure, overLimitBytes, submitFailure, type EndedJob } from "../../src/backends/slurm/failures";
import { failureError } from "../../src/step/failures";
import type { NodeInfo } from "../../src/backends/slurm/commands";

// What a cell shows for each ending: the failure as facts, rendered by the session's one renderer.
const endedJobError = (e: EndedJob) => failureError(endedJobFailure(e));
const submitError = (step: string, stderr: string, ask: Parameters<typeof submitFailure>[2], nodes: NodeInfo[] | null) =>
  failureError(submitFailure(step, stderr, ask, nodes));
import { describe } from "../../src/backends/slurm/launcher";
import { batchScript, sbatchArgs, shQuote, slurmMinutes } from "../../src/backends/slurm/script";
import { SlurmConfigError, slurmSettings, splitWords } from "../../src/backends/slurm/settings";
import { EventLogTailer, EventLogWriter } from "../../src/worker/remote/event-log";
import { FsBackend } from "../../src/store/fs-backend";

const MiB = 2 ** 20;
const fsLoc = { kind: "fs" as const, path: "/data/ds", source: "env" as const };

function settings(env: NodeJS.ProcessEnv = {}, partition?: string) {
  return slurmSettings({ partition, env, datastore: fsLoc, cwd: "/home/u/nb", packageDir: "/opt/nbscale" });
}

const job = (state: string, extra: Partial<JobInfo> = {}): JobInfo => ({
  id: "42",
  state,
  reason: "None",
  nodes: "node7",
  exitCode: 0,
  signal: 0,
  timeLimit: "00:02:00",
  ...extra,
});

test("sbatch gets resources as options and a script it can't misread", () => {
  const s = settings({ NBSCALE_SLURM_ACCOUNT: "proj1", NBSCALE_SLURM_SBATCH_FLAGS: `--qos=high --constraint="a b"` }, "gpu");
  const spec = { step: "train", task: "train-x-1", memory: 32 * 2 ** 30, cpu: 8, gpu: 1, timeoutMs: 90_000, output: "/data/ds/tasks/train-x-1/slurm-%j.out" };
  const args = sbatchArgs(spec, s, "/tmp/job.sh");
  assert.deepEqual(args, [
    "--parsable",
    "--job-name=nbscale-train",
    "--output=/data/ds/tasks/train-x-1/slurm-%j.out",
    "--chdir=/home/u/nb",
    "--export=ALL",
    "--no-requeue",
    `--mem=${32 * 1024}M`,
    "--cpus-per-task=8",
    "--gres=gpu:1",
    "--time=2",
    "--partition=gpu",
    "--account=proj1",
    "--qos=high",
    "--constraint=a b",
    "/tmp/job.sh",
  ]);
  const script = batchScript(spec, s);
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.match(script, /exec '.*' '--max-old-space-size=\d+' '\/opt\/nbscale\/bin\/nbscale\.js' 'worker' '--task' '\/data\/ds' 'train-x-1'\n$/);
});

test("every word of the script is data to sh, however hostile", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-slurm-test-"));
  try {
    const hostile = `/tmp/x'; touch ${dir}/pwned; echo '$(id) \`id\` "q" \\`;
    const s = { ...settings({ NBSCALE_SLURM_NODE: "/bin/echo" }), nodeDatastore: hostile, nbscaleBin: "a b" };
    const file = path.join(dir, "job.sh");
    fs.writeFileSync(file, batchScript({ step: "s", task: "t-1", output: "o" }, s));
    const out = execFileSync("sh", [file], { encoding: "utf8" });
    assert.equal(out, `a b worker --task ${hostile} t-1\n`);
    assert.equal(fs.existsSync(path.join(dir, "pwned")), false);
    assert.equal(shQuote("it's"), `'it'\\''s'`);
    // A job array element runs its own task: <task>-<index>, the index from Slurm's environment only.
    fs.writeFileSync(file, batchScript({ step: "s", task: "t-1", output: "o", array: "0-3%2" }, s));
    const el = execFileSync("sh", [file], { encoding: "utf8", env: { ...process.env, SLURM_ARRAY_TASK_ID: "3" } });
    assert.equal(el, `a b worker --task ${hostile} t-1-3\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("settings: partition from the line over the environment, bad values named", () => {
  assert.equal(settings({ NBSCALE_SLURM_PARTITION: "debug" }).partition, "debug");
  assert.equal(settings({ NBSCALE_SLURM_PARTITION: "debug" }, "small").partition, "small");
  assert.throws(
    () => settings({}, "x;y"),
    (e: unknown) => e instanceof SlurmConfigError && e.setting === "--partition",
  );
  assert.throws(() => settings({ NBSCALE_SLURM_SBATCH_FLAGS: "--output=/x" }), /set by nbscale itself/);
  assert.throws(() => settings({ NBSCALE_SLURM_DATASTORE: "relative/dir" }), /absolute path/);
  assert.equal(settings({ NBSCALE_SLURM_DATASTORE: "/shared/ds" }).nodeDatastore, "/shared/ds");
  assert.equal(settings({ NBSCALE_SLURM_DATASTORE: "/shared/ds" }).kernelDatastoreDir, "/data/ds");
  assert.deepEqual(splitWords(` a 'b c' "d \\"e\\"" f\\ g `), ["a", "b c", 'd "e"', "f g"]);
  assert.throws(() => splitWords("'open"), /unterminated/);
  assert.equal(slurmMinutes(1), 1);
  assert.equal(slurmMinutes(61_000), 2);
});

test("scontrol's one-line records parse, values with spaces included", () => {
  const kv = parseKeyValues("JobId=5 JobName=wrap JobState=PENDING Reason=Resources Dependency=(null) ExitCode=0:0 Command=/x y/job.sh WorkDir=/tmp NodeList=");
  assert.equal(kv.JobState, "PENDING");
  assert.equal(kv.Reason, "Resources");
  assert.equal(kv.Command, "/x y/job.sh");
  assert.equal(kv.NodeList, "");
  assert.deepEqual(describe(job("PENDING", { reason: "Priority", nodes: "" })), {
    phase: "queued",
    label: "PENDING (Priority)",
    info: job("PENDING", { reason: "Priority", nodes: "" }),
  });
  assert.equal(describe(job("RUNNING")).label, "RUNNING on node7");
  assert.equal(describe(job("TIMEOUT")).phase, "ended");
  assert.equal(describe(null).phase, "ended");
});

test("each way a job ends without a result has its own message", () => {
  const base = { step: "train", job: "42", output: "", peakRss: 0 };
  const timeout = endedJobError({ ...base, info: job("TIMEOUT"), timeoutMs: 90_000 });
  assert.equal(timeout.ename, "StepTimeout");
  assert.match(timeout.evalue, /did not finish within its timeout of 1m30s: Slurm stopped Slurm job 42 on node7 at its time limit \(00:02:00/);
  const noLimit = endedJobError({ ...base, info: job("TIMEOUT") });
  assert.match(noLimit.evalue, /reached the partition's time limit .* --timeout/);
  const cancelled = endedJobError({ ...base, info: job("CANCELLED") });
  assert.equal(cancelled.ename, "StepCancelled");
  assert.match(cancelled.evalue, /cancelled from outside \(scancel, or an administrator\)/);
  const nodeFail = endedJobError({ ...base, info: job("NODE_FAIL") });
  assert.equal(nodeFail.ename, "StepNodeFailed");
  assert.match(nodeFail.evalue, /node running it \(node7\) failed \(Slurm: NODE_FAIL\)/);
  const other = endedJobError({ ...base, info: job("FAILED", { exitCode: 127 }), output: "sh: 1: node: not found\n" });
  assert.equal(other.ename, "WorkerDied");
  assert.match(other.evalue, /ended FAILED \(exit code 127\)/);
  assert.ok(other.traceback.some((l) => l.includes("node: not found")));
  const lost = endedJobError({
    ...base,
    info: job("FAILED", { exitCode: 2 }),
    output: "[nbscale worker t] no task t in the datastore at /x: is NBSCALE_SLURM_DATASTORE right?\n",
  });
  assert.equal(lost.ename, "SlurmDatastoreError");
  assert.match(lost.evalue, /NBSCALE_SLURM_DATASTORE/);
});

test("out of memory: Slurm's kill and V8's heap limit both give the local advice", () => {
  const base = { step: "hog", job: "42", peakRss: 0, memory: 300 * MiB };
  const killed = endedJobError({
    ...base,
    info: job("CANCELLED"),
    output: "slurmstepd-node7: error: StepId=42.batch exceeded memory limit (401817600 > 314572800), being killed\n",
  });
  assert.equal(killed.ename, "StepOutOfMemory");
  assert.match(killed.evalue, /^step `hog` ran out of memory: it used about 383 MiB of the 300 MiB it asked for; re-run with `--memory 768M`$/);
  assert.match(killed.traceback[1], /Slurm killed the job for exceeding its memory limit/);
  const cgroup = endedJobError({ ...base, info: job("OUT_OF_MEMORY"), output: "" });
  assert.equal(cgroup.ename, "StepOutOfMemory");
  const heap = endedJobError({
    ...base,
    info: job("FAILED", { exitCode: 134 }),
    output: "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n",
  });
  assert.equal(heap.ename, "StepOutOfMemory");
  assert.match(heap.traceback[1], /JavaScript heap hit the limit/);
  // Older Slurm prints KiB.
  assert.equal(overLimitBytes(400_000, 307_200, 300 * MiB), 400_000 * 1024);
  assert.equal(overLimitBytes(401_817_600, 314_572_800, 300 * MiB), 401_817_600);
});

test("a refused request names the largest node of the partition", () => {
  const nodes = [
    { name: "small1", cpus: 4, memory: 16 * 2 ** 30, gpus: 0, partitions: ["cpu"], state: "IDLE" },
    { name: "big1", cpus: 64, memory: 512 * 2 ** 30, gpus: 0, partitions: ["cpu"], state: "IDLE" },
    { name: "gpu1", cpus: 32, memory: 256 * 2 ** 30, gpus: 4, partitions: ["gpu"], state: "IDLE" },
  ];
  const stderr =
    "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available\n";
  const e = submitError("train", stderr, { memory: 900 * 2 ** 30 }, nodes);
  assert.equal(e.ename, "StepResourceError");
  assert.match(
    e.evalue,
    /asks for --memory 900G, but no node in the cluster can give that: the largest node, big1, has 512 GiB of memory and 64 CPUs, no GPUs/,
  );
  const g = submitError("train", stderr, { memory: 300 * 2 ** 30, gpu: 8, partition: "gpu" }, nodes);
  assert.match(g.evalue, /no node in partition gpu .* gpu1, has 256 GiB of memory and 32 CPUs, 4 GPUs/);
  const p = submitError("train", "sbatch: error: invalid partition specified: nope\n", { partition: "nope" }, nodes);
  assert.equal(p.ename, "SlurmSubmitError");
  assert.match(p.evalue, /invalid partition specified: nope .*NBSCALE_SLURM_PARTITION/);
});

test("event log: chunks in order, read whole, nothing twice", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-events-"));
  try {
    const backend = new FsBackend(dir);
    const w = new EventLogWriter(backend, "t-1", 10_000);
    const tail = new EventLogTailer(backend, "t-1");
    w.push({ type: "stream", name: "stdout", text: "a\n" });
    assert.deepEqual(await tail.poll(), []);
    await w.flush();
    w.push({ type: "usage", peakRss: 5 });
    w.push({ type: "stream", name: "stderr", text: "b\n" });
    await w.flush();
    await w.flush();
    assert.equal(w.chunks, 2);
    assert.deepEqual(await tail.poll(), [
      { type: "stream", name: "stdout", text: "a\n" },
      { type: "usage", peakRss: 5 },
      { type: "stream", name: "stderr", text: "b\n" },
    ]);
    assert.deepEqual(await tail.poll(), []);
    assert.equal(tail.read, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("arrayIndices: scontrol lists pending array elements as one range", () => {
  assert.deepEqual(arrayIndices("1-3%2"), [1, 2, 3]);
  assert.deepEqual(arrayIndices("0,2,5-7"), [0, 2, 5, 6, 7]);
  assert.deepEqual(arrayIndices("0-6:3"), [0, 3, 6]);
  assert.deepEqual(arrayIndices("4"), [4]);
  assert.deepEqual(arrayIndices(""), []);
});

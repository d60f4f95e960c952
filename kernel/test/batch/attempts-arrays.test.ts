import { test } from "node:test";
import assert from "node:assert/strict";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { attemptKey, eventChunkKey } from "../../src/worker/remote/protocol";
import { checkLazyInputs, storeValues, UnreachableLazyInput } from "../../src/worker/remote/values";
import { EventLogTailer, EventLogWriter } from "../../src/worker/remote/event-log";
import { childJobId } from "../../src/backends/batch/array";
import { jobAttempts, submitJobInput } from "../../src/backends/batch/submit";
import { stepStateOf } from "../../src/backends/batch/view";
import { JobTimeline } from "../../src/backends/batch/watch";
import { BatchConfigError } from "../../src/backends/batch/settings";
import { packageChoice } from "../../src/backends/batch/worker-package";
import { launcherAttempt, taskOf } from "../../src/worker/remote-main";
import { stepStatusText } from "../../src/session/step-status";
import { backendFor } from "../../src/store/backends";
import { encodeValues } from "../../src/worker/codec";

function fsStore() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-attempts-"));
  const loc = { kind: "fs" as const, path: dir, source: "flag" as const };
  return { dir, loc, backend: backendFor(loc) };
}

test("attempt 1 keeps the task's layout; a retry gets its own started marker and event log", () => {
  assert.equal(attemptKey("t1", 1, "started.json"), "tasks/t1/started.json");
  assert.equal(attemptKey("t1", 3, "started.json"), "tasks/t1/attempt-3/started.json");
  assert.equal(eventChunkKey("t1", 2), "tasks/t1/events/000002.jsonl");
  assert.equal(eventChunkKey("t1", 2, 2), "tasks/t1/attempt-2/events/000002.jsonl");
  assert.throws(() => attemptKey("t1", 0, "started.json"), /invalid attempt/);
  assert.equal(launcherAttempt({ AWS_BATCH_JOB_ATTEMPT: "2" }), 2);
  assert.equal(launcherAttempt({}), 1);
  assert.equal(launcherAttempt({ AWS_BATCH_JOB_ATTEMPT: "x" }), 1);
});

test("two attempts' event logs don't collide, and each is read back on its own", async () => {
  const { backend } = fsStore();
  const first = new EventLogWriter(backend, "t2", 10_000, 1);
  const second = new EventLogWriter(backend, "t2", 10_000, 2);
  first.push({ type: "stream", name: "stdout", text: "one\n" });
  second.push({ type: "stream", name: "stdout", text: "two\n" });
  await first.flush();
  await second.flush();
  assert.equal(second.chunks, 1, "attempt 2's first chunk is its own, not refused as a second writer");
  const texts = async (attempt: number) => (await new EventLogTailer(backend, "t2", attempt).poll()).map((r) => ("text" in r ? r.text : ""));
  assert.deepEqual(await texts(1), ["one\n"]);
  assert.deepEqual(await texts(2), ["two\n"]);
});

test("an array child picks its item's task; a plain task is itself", () => {
  assert.equal(taskOf("base", {}), "base");
  assert.equal(taskOf("base", { NBSCALE_TASK_ARRAY: "1", AWS_BATCH_JOB_ARRAY_INDEX: "7" }), "base-7");
  assert.throws(() => taskOf("base", { NBSCALE_TASK_ARRAY: "1" }), /AWS_BATCH_JOB_ARRAY_INDEX is not set/);
  assert.throws(() => taskOf("base", { NBSCALE_TASK_ARRAY: "1", AWS_BATCH_JOB_ARRAY_INDEX: "../x" }), /AWS_BATCH_JOB_ARRAY_INDEX is "..\/x"/);
  assert.equal(childJobId("j", 3, 5), "j:3");
  assert.equal(childJobId("j", 0, 1), "j", "one item is a plain job");
});

test("an array job is sent with arrayProperties and the array flag; sizes Batch refuses are refused here", () => {
  const base = { step: "s", queue: "q", jobDefinition: "d:1", datastore: "s3://b/p", task: "base", env: {} };
  const input = submitJobInput({ ...base, arraySize: 4, workerPackage: "https://x/nbscale.tgz" });
  assert.deepEqual(input.arrayProperties, { size: 4 });
  const env = Object.fromEntries((input.containerOverrides?.environment ?? []).map((e) => [e.name, e.value]));
  assert.equal(env.NBSCALE_TASK_ARRAY, "1");
  assert.equal(env.NBSCALE_WORKER_PACKAGE, "https://x/nbscale.tgz");
  assert.equal(submitJobInput(base).arrayProperties, undefined);
  assert.throws(() => submitJobInput({ ...base, arraySize: 1 }), /2 to 10000/);
  assert.throws(() => submitJobInput({ ...base, arraySize: 10_001 }), /2 to 10000/);
  assert.equal(jobAttempts(undefined), 1);
  assert.equal(jobAttempts(2), 3);
  assert.equal(jobAttempts(50), 10, "Batch allows 10 attempts");
});

test("Batch states map to what they mean for the step; the text shows the time in each", () => {
  assert.deepEqual(["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"].map(stepStateOf), [
    "queued",
    "queued",
    "queued",
    "starting",
    "running",
    undefined,
  ]);
  const t = new JobTimeline();
  t.observe("SUBMITTED", 0);
  t.observe("RUNNABLE", 400);
  assert.deepEqual(t.states(12_400), [
    { state: "SUBMITTED", ms: 400 },
    { state: "RUNNABLE", ms: 12_000 },
  ]);
  assert.equal(t.runningSince, undefined);
  t.observe("RUNNING", 13_000);
  t.observe("FAILED", 14_000);
  assert.equal(t.runningSince, 13_000);
  assert.deepEqual(t.states(99_000).at(-1), { state: "FAILED" });
  const text = stepStatusText({
    step: "train",
    state: "queued",
    target: "batch",
    jobId: "j1",
    job: { system: "AWS Batch", state: "RUNNABLE", states: t.states(12_400).slice(0, 2) },
  });
  assert.equal(text, "step train: queued · on batch · job j1 · SUBMITTED 0.4 s → RUNNABLE 12 s");
});

test("NBSCALE_WORKER_PACKAGE: the words, a spec as is, shell characters refused naming the setting", () => {
  assert.deepEqual(packageChoice({}), { kind: "auto" });
  assert.deepEqual(packageChoice({ NBSCALE_WORKER_PACKAGE: "s3" }), { kind: "s3" });
  assert.deepEqual(packageChoice({ NBSCALE_WORKER_PACKAGE: " npm " }), { kind: "npm" });
  assert.deepEqual(packageChoice({ NBSCALE_WORKER_PACKAGE: "nbscale@1.2.3" }), { kind: "spec", spec: "nbscale@1.2.3" });
  for (const bad of ['x"y', "a$(b)", "a`b`", "a\nb", "a\\b"]) {
    assert.throws(
      () => packageChoice({ NBSCALE_WORKER_PACKAGE: bad }),
      (e: unknown) => e instanceof BatchConfigError && e.setting === "NBSCALE_WORKER_PACKAGE",
    );
  }
});

test("a Lazy input in the task's datastore travels as its blob ref; one elsewhere or missing is refused before any write", async () => {
  const { loc, backend, dir } = fsStore();
  const value = encodeValues([["v", new Float64Array([1, 2, 3])]], true);
  const stored = await storeValues(backend, value);
  const sha = stored.refs[0].sha256;
  const lazy = (store: typeof loc, sha256 = sha) => ({
    name: "big",
    type: "Float64Array(3)",
    frames: 0,
    lazy: { store, sha256, size: stored.refs[0].size, kind: "v8" as const },
  });
  const small = encodeValues([["n", 5]], true);
  const withLazy = { specs: [...small.specs, lazy(loc)], frames: small.frames };
  const out = await storeValues(backend, withLazy);
  assert.deepEqual(out.refs[1], { name: "big", type: "Float64Array(3)", sha256: sha, size: stored.refs[0].size });
  assert.equal(out.uploaded, small.bytes, "only the eager input is written");

  const other = { kind: "fs" as const, path: path.join(dir, "elsewhere"), source: "flag" as const };
  await assert.rejects(checkLazyInputs(backend, [lazy(other)]), (e: unknown) => e instanceof UnreachableLazyInput && !e.missing && e.store === other.path);
  await assert.rejects(checkLazyInputs(backend, [lazy(loc, "0".repeat(64))]), (e: unknown) => e instanceof UnreachableLazyInput && e.missing);
  const before = fs.readdirSync(dir, { recursive: true }).length;
  await assert.rejects(storeValues(backend, { specs: [...small.specs, lazy(other)], frames: small.frames }), UnreachableLazyInput);
  assert.equal(fs.readdirSync(dir, { recursive: true }).length, before, "nothing written for a refused task");
});

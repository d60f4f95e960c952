import { test } from "node:test";
import assert from "node:assert/strict";
import { endedJobError } from "../../src/backends/slurm/failures";
import { jobFailedError } from "../../src/backends/batch/failure";
import { flowMemoryAdvice, stepErrorOf } from "../../src/flow/remote-launcher";
import { isFlowTask } from "../../src/flow/remote-task";

const MiB = 2 ** 20;

test("a Slurm memory kill becomes an oom step error with flow advice and the job output file", () => {
  const cell = endedJobError({
    step: "train",
    job: "42",
    info: { id: "42", state: "OUT_OF_MEMORY", reason: "None", nodes: "node-1", exitCode: 0, signal: 9, timeLimit: "" },
    output: "slurmstepd: error: Detected 1 oom_kill event\n",
    memory: 256 * MiB,
    peakRss: 300 * MiB,
  });
  const e = stepErrorOf("train", cell, "/shared/store/tasks/t/slurm-42.out");
  assert.equal(e.kind, "oom");
  assert.match(e.message, /^step `train` ran out of memory: it used about 300 MiB of the 256 MiB it asked for/);
  assert.match(e.message, /Slurm job 42 on node-1/);
  assert.match(e.message, /\[job output: \/shared\/store\/tasks\/t\/slurm-42\.out\]$/);
  assert.doesNotMatch(e.message, /the kernel and its variables|re-run with/);
  // The cell's --memory suggestion, said as a flow setting.
  const size = /--memory (\S+)`/.exec(cell.evalue)![1];
  assert.equal(e.advice, flowMemoryAdvice("train", cell.evalue));
  assert.ok(e.advice!.includes(`memory: "${size}" in step("train"`), e.advice);
});

test("a Slurm time limit is a timeout; a node failure is an error that says to resume", () => {
  const info = { id: "7", state: "TIMEOUT", reason: "TimeLimit", nodes: "n", exitCode: 0, signal: 0, timeLimit: "00:01:00" };
  const timedOut = stepErrorOf("s", endedJobError({ step: "s", job: "7", info, output: "", timeoutMs: 30_000, peakRss: 0 }), undefined);
  assert.equal(timedOut.kind, "timeout");
  assert.match(timedOut.message, /did not finish within its timeout 30s/);
  const failed = stepErrorOf("s", endedJobError({ step: "s", job: "7", info: { ...info, state: "NODE_FAIL" }, output: "", peakRss: 0 }), undefined);
  assert.equal(failed.kind, "error");
  assert.match(failed.message, /resume the run/);
  assert.doesNotMatch(failed.message, /run the cell again/);
});

test("a Batch container killed for memory is an oom step error; other FAILED reasons are errors", () => {
  const oom = jobFailedError(
    { containerReason: "OutOfMemoryError: Container killed due to memory usage", exitCode: 137, attempts: 1 },
    { step: "fit", jobId: "j-1", memory: 2048 * MiB, logTail: ["last line"] },
  );
  const e = stepErrorOf("fit", oom, undefined);
  assert.equal(e.kind, "oom");
  assert.match(e.advice!, /memory: "\d+G" in step\("fit"/);
  assert.match(e.message, /AWS Batch job j-1/);
  assert.match(e.message, /last line/);
  const other = stepErrorOf(
    "fit",
    jobFailedError({ statusReason: "Essential container in task exited", exitCode: 3, attempts: 1 }, { step: "fit", jobId: "j-2", logTail: [] }),
    undefined,
  );
  assert.equal(other.kind, "error");
  assert.match(other.message, /Essential container in task exited/);
});

test("only task.json of a flow step is a flow task", () => {
  assert.equal(isFlowTask({ kind: "flow", format: 1 }), true);
  assert.equal(isFlowTask({ format: 1, program: {} }), false);
  assert.equal(isFlowTask(null), false);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { endedJobFailure as endedJobError } from "../../src/backends/slurm/failures";
import { jobFailure as jobFailedError } from "../../src/backends/batch/failure";
import { failureError } from "../../src/step/failures";
import { stepErrorOf } from "../../src/flow/step-error";
import { isFlowTask } from "../../src/flow/remote-task";

const MiB = 2 ** 20;

test("a Slurm memory kill: one failure, a cell's error and a flow step's error with the same message and each its own advice", () => {
  const failure = endedJobError({
    step: "train",
    job: "42",
    info: { id: "42", state: "OUT_OF_MEMORY", reason: "None", nodes: "node-1", exitCode: 0, signal: 9, timeLimit: "" },
    output: "slurmstepd: error: Detected 1 oom_kill event\n",
    memory: 256 * MiB,
    peakRss: 300 * MiB,
  });
  const e = stepErrorOf("train", failure, "/shared/store/tasks/t/slurm-42.out");
  const cell = failureError(failure);
  assert.ok(cell.evalue.startsWith(failure.message) && e.message.startsWith(failure.message), `${cell.evalue}\n${e.message}`);
  assert.equal(e.name, cell.ename);
  assert.equal(e.kind, "oom");
  assert.match(e.message, /^step `train` ran out of memory: it used about 300 MiB of the 256 MiB it asked for/);
  assert.match(e.message, /Slurm job 42 on node-1/);
  assert.match(e.message, /\[job output: \/shared\/store\/tasks\/t\/slurm-42\.out\]$/);
  assert.doesNotMatch(e.message, /the kernel and its variables|re-run with/);
  // The cell's --memory suggestion, said as a flow setting.
  const size = /--memory (\S+)`/.exec(cell.evalue)![1];
  assert.ok(e.advice!.includes(`memory: "${size}" in step("train"`), e.advice);
});

test("a Slurm time limit is a timeout; a node failure is an error that says to resume", () => {
  const info = { id: "7", state: "TIMEOUT", reason: "TimeLimit", nodes: "n", exitCode: 0, signal: 0, timeLimit: "00:01:00" };
  const timedOut = stepErrorOf("s", endedJobError({ step: "s", job: "7", info, output: "", timeoutMs: 30_000, peakRss: 0 }), undefined);
  assert.equal(timedOut.kind, "timeout");
  assert.match(timedOut.message, /did not finish within its timeout of 30s/);
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

/**
 * The one retry policy (step/retry.ts) and the one failure wording
 * (backends/step-failure.ts), rendered for a cell (step/failures.ts) and for
 * a flow step (flow/step-error.ts): the same facts give the same decision and
 * the same message on both surfaces.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { failure, interrupted, notStarted, outOfMemory, workerEnded, type StepFailure } from "../../src/backends/step-failure";
import { retryDecision } from "../../src/step/retry";
import { failureError } from "../../src/step/failures";
import { stepErrorOf } from "../../src/flow/step-error";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const state = { attempt: 1, attempts: 3 };

test("deaths, lost nodes, preemption and timeouts are retried as they were", () => {
  const cases: StepFailure[] = [
    workerEnded("s", { death: "killed", pid: 7, signal: "SIGKILL", code: null, stderr: "" }, undefined, undefined),
    workerEnded("s", { death: "timeout" }, undefined, 1000),
    failure("node-failed", "StepNodeFailed", "step `s`: the node failed"),
    failure("preempted", "StepPreempted", "step `s`: preempted"),
  ];
  for (const f of cases) {
    const d = retryDecision(f, { ...state, memory: GiB });
    assert.ok(d.retry, f.name);
    assert.equal(d.retry && d.memory, undefined, `${f.name} keeps its memory`);
  }
});

test("out of memory is retried only with retries left, and then with the suggested memory", () => {
  const f = workerEnded("s", { death: "oom", peakRss: 600 * MiB }, 512 * MiB, undefined);
  assert.equal(f.kind, "out-of-memory");
  const d = retryDecision(f, { ...state, memory: 512 * MiB });
  assert.ok(d.retry);
  assert.equal(d.memory, GiB, "twice the request, as the advice says");
  assert.match(d.notice, /--memory 1G/);
  assert.equal(retryDecision(f, { attempt: 1, attempts: 1, memory: 512 * MiB }).retry, false, "no --retries: no retry");
  // The target can't give what the failure suggests: failing again is all a retry would do.
  assert.equal(retryDecision(f, { ...state, memory: 512 * MiB, maxMemory: 768 * MiB }).retry, false);
});

test("exceptions, interrupts, cancels and refusals are never retried", () => {
  for (const f of [
    failure("exception", "TypeError", "TypeError: x is not a function"),
    interrupted("s"),
    failure("cancelled", "StepCancelled", "cancelled"),
    notStarted("SlurmSubmitError", "not submitted"),
  ]) {
    assert.equal(retryDecision(f, state).retry, false, f.name);
  }
  // Nor anything once an interrupt came, or on the last attempt.
  const died = workerEnded("s", { death: "killed", pid: 7, signal: "SIGTERM", code: null, stderr: "" }, undefined, undefined);
  assert.equal(retryDecision(died, { ...state, stopping: true }).retry, false);
  assert.equal(retryDecision(died, { attempt: 3, attempts: 3 }).retry, false);
});

test("one failure reads the same in a cell and in a flow; each says the fix in its own terms", () => {
  const f = outOfMemory({ step: "fit", requested: GiB, used: 1.2 * GiB, how: "the memory watchdog stopped its worker" });
  const cell = failureError(f);
  const flow = stepErrorOf("fit", f);
  assert.equal(cell.ename, "StepOutOfMemory");
  assert.equal(flow.name, "StepOutOfMemory");
  assert.equal(flow.kind, "oom");
  assert.equal(cell.evalue, `${f.message}; re-run with \`--memory 2G\``);
  assert.ok(flow.message.startsWith(f.message), flow.message);
  assert.match(flow.advice!, /memory: "2G" in step\("fit"/);
  assert.ok(cell.traceback.some((l) => l.includes("the memory watchdog stopped its worker")));
  assert.ok(cell.traceback.some((l) => l.includes("the kernel and its variables are intact")));
  assert.doesNotMatch(flow.message, /kernel and its variables|re-run with/);

  const lost = failure("node-failed", "StepNodeFailed", "step `fit`: the node running it failed", [], { fix: { kind: "run-again" } });
  assert.match(failureError(lost).evalue, /; run the cell again$/);
  assert.match(stepErrorOf("fit", lost).message, /; resume the run$/);

  const late = workerEnded("fit", { death: "timeout" }, undefined, 90_000);
  assert.equal(failureError(late).evalue, "step `fit` did not finish within its timeout of 1m30s; its worker was stopped");
  assert.equal(stepErrorOf("fit", late).message, failureError(late).evalue);
  assert.equal(stepErrorOf("fit", late).kind, "timeout");
});

test("a heap-limit death says at least the heap limit was used, whatever was sampled", () => {
  const f = workerEnded("s", { death: "oom-heap", peakRss: 10 * MiB }, GiB, undefined);
  assert.ok(f.memory!.usedBytes > 700 * MiB, String(f.memory!.usedBytes));
  assert.match(f.message, /of the 1\.0 GiB it asked for/);
});

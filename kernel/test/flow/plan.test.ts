import { test } from "node:test";
import assert from "node:assert/strict";
import { canReuse, downstreamOf, stepsToResume } from "../../src/flow/plan";
import type { StepRecord } from "../../src/store/runs";

const rec = (over: Partial<StepRecord>): StepRecord => ({
  format: 1,
  run: "run-20250101T000000-000000",
  step: "s",
  status: "succeeded",
  executed: true,
  reused_from: null,
  code_sha256: "code1",
  inputs: { x: { sha256: "h1", from: "a.x" } },
  artifacts: {},
  versions: {},
  execution: null,
  target: "local",
  attempts: 1,
  started: null,
  finished: null,
  error: null,
  log: null,
  worker: null,
  ...over,
});

test("downstream of a step: itself and everything that reads from it, transitively", () => {
  const nodes = [
    { name: "load", needs: [] },
    { name: "left", needs: ["load"] },
    { name: "right", needs: ["load"] },
    { name: "deep", needs: ["left"] },
    { name: "join", needs: ["deep", "right"] },
  ];
  assert.deepEqual([...downstreamOf(nodes, ["left"])].sort(), ["deep", "join", "left"]);
  assert.deepEqual([...downstreamOf(nodes, ["load"])].sort(), ["deep", "join", "left", "load", "right"]);
  assert.deepEqual([...downstreamOf(nodes, ["join"])], ["join"]);
});

test("reuse only with the same code and the same input hashes", () => {
  const inputs = { x: { sha256: "h1" } };
  assert.equal(canReuse(rec({}), "code1", inputs), true);
  assert.equal(canReuse(rec({}), "code2", inputs), false, "edited code");
  assert.equal(canReuse(rec({}), "code1", { x: { sha256: "h2" } }), false, "changed input");
  assert.equal(canReuse(rec({}), "code1", { ...inputs, y: { sha256: "h3" } }), false, "new input");
  assert.equal(canReuse(rec({ status: "failed" }), "code1", inputs), false);
  assert.equal(canReuse(rec({ inputs: {} }), "code1", {}), true);
});

test("resume without --from re-runs what did not succeed", () => {
  assert.deepEqual(stepsToResume(["a", "b", "c", "d"], { a: { status: "succeeded" }, b: { status: "failed" }, c: { status: "skipped" } }), ["b", "c", "d"]);
});

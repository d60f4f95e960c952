/**
 * The pure parts of `--foreach`: the joined arrays' type text, the default
 * parallelism, the per-item output prefixing, the text progress bar, and the
 * program rewrite that hands `item`/`index` to the body.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as os from "node:os";
import { arrayType, defaultParallel } from "../../src/step/foreach";
import { ItemOutput } from "../../src/step/foreach-output";
import { progressText } from "../../src/step/foreach-progress";
import { implicitDeclarations } from "../../src/step/foreach-input";
import type { StepEvent } from "../../src/worker/events";

test("array types: simple names get [], compound types are wrapped, holes add undefined", () => {
  assert.equal(arrayType("number", false), "number[]");
  assert.equal(arrayType("Map<string, number>", false), "Map<string, number>[]");
  assert.equal(arrayType("string | null", false), "Array<string | null>");
  assert.equal(arrayType("{ x: number; }", false), "Array<{ x: number; }>");
  assert.equal(arrayType("() => void", false), "Array<() => void>");
  assert.equal(arrayType("number", true), "Array<number | undefined>");
  assert.equal(arrayType("any", true), "any[]");
});

test("default parallelism: the cores, fewer when --memory does not fit that many times", () => {
  const cores = os.availableParallelism();
  assert.equal(defaultParallel(64 * 2 ** 30, undefined), cores);
  assert.equal(defaultParallel(8 * 2 ** 30, 8 * 2 ** 30), 1);
  assert.equal(defaultParallel(8 * 2 ** 30, 16 * 2 ** 30), 1, "never 0");
  assert.equal(defaultParallel(1024 * 2 ** 30, 2 ** 30), cores, "memory is not the limit");
});

test("item output: whole lines, prefixed with the index; partial lines wait; clears are dropped", () => {
  const sent: StepEvent[] = [];
  const out = new ItemOutput(3, (e) => void sent.push(e));
  out.onEvent({ type: "stream", name: "stdout", text: "a\nb" });
  out.onEvent({ type: "stream", name: "stdout", text: "c\n\nd" });
  out.onEvent({ type: "stream", name: "stderr", text: "warn\n" });
  out.onEvent({ type: "clear", wait: false });
  out.onEvent({ type: "display", data: { "text/plain": "x" }, metadata: {}, update: false });
  out.flush();
  const texts = sent.map((e) => (e.type === "stream" ? `${e.name}:${e.text}` : e.type));
  assert.deepEqual(texts, ["stdout:[3] a\n", "stdout:[3] bc\n\n", "stderr:[3] warn\n", "display", "stdout:[3] d\n"]);
  assert.equal(out.stdout, "a\nbc\n\nd", "the record keeps the item's own text, unprefixed");
  assert.equal(out.stderr, "warn\n");
});

test("progress text: a bar over finished items, counts, elapsed, estimate", () => {
  const text = progressText({ step: "fit", state: "running", elapsedMs: 4100, foreach: { done: 3, running: 2, failed: 1, total: 8 } }, 6800);
  assert.equal(text, `step fit: running [${"█".repeat(12)}${"░".repeat(12)}] 3/8 done · 2 running · 1 failed · 4.1 s · ~6.8 s left`);
  const empty = progressText({ step: "e", state: "succeeded", elapsedMs: 10, foreach: { done: 0, running: 0, failed: 0, total: 0 } }, null);
  assert.match(empty, /^step e: succeeded \[█{24}\] 0\/0 done/);
});

test("the body's type check sees item and index as ambient declarations after it", () => {
  assert.equal(implicitDeclarations("{ x: number }"), "\ndeclare const item: { x: number };\ndeclare const index: number;");
});

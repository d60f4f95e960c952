import { test } from "node:test";
import assert from "node:assert/strict";
import { analyzeCellDefinitions } from "../../src/step/analysis";

test("what a cell defines and reads", () => {
  const d = analyzeCellDefinitions("const total = data.reduce((a, b) => a + scale(b), 0);\nfunction helper() { return total + offset; }\ntype R = Row[];");
  assert.deepEqual(
    d.declarations.map((x) => [x.name, x.kind, x.line]),
    [
      ["total", "value", 0],
      ["helper", "function", 1],
      ["R", "type", 2],
    ],
  );
  assert.deepEqual(d.reads.map((r) => [r.name, r.space, r.typeOnly]).sort(), [
    ["Row", "type", true],
    ["data", "value", false],
    ["offset", "value", false],
    ["scale", "value", false],
  ]);
  const helper = d.declarations.find((x) => x.name === "helper")!;
  assert.deepEqual(
    helper.refs.map((r) => [r.name, r.local, r.eager]),
    [
      ["total", true, false],
      ["offset", false, false],
    ],
  );
});

test("assigns lists free names written", () => {
  const d = analyzeCellDefinitions("x = 1;\ny += 2;\nz++;\nlet w = 0; w = 3;\nobj.p = 4;");
  assert.deepEqual(d.assigns.sort(), ["x", "y", "z"]);
  const x = d.reads.find((r) => r.name === "x")!;
  assert.deepEqual([x.read, x.write], [false, true]);
  const y = d.reads.find((r) => r.name === "y")!;
  assert.deepEqual([y.read, y.write], [true, true]);
  assert.ok(d.reads.find((r) => r.name === "obj")!.read);
});

test("results are cached by code", () => {
  const code = "const cached = 1;";
  assert.equal(analyzeCellDefinitions(code), analyzeCellDefinitions(code));
});

test("lineOf maps offsets to lines", () => {
  const d = analyzeCellDefinitions("a;\n\nbb;\nccc");
  assert.deepEqual(
    [0, 2, 3, 4, 7, 8, 12].map((p) => d.lineOf(p)),
    [0, 0, 1, 2, 2, 3, 3],
  );
});

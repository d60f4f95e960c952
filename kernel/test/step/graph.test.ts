import { test } from "node:test";
import assert from "node:assert/strict";
import { buildCellGraph } from "../../src/step/graph";

test("a DAG, not a line: two independent branches joined at the end", () => {
  const g = buildCellGraph([
    { id: "load", code: "const raw = [1, 2, 3, 4];" },
    { id: "helpers", code: "const square = (x: number) => x * x;" },
    { id: "left", code: "const squares = raw.map(square);" },
    { id: "right", code: "const doubled = raw.map((x) => x * 2);" },
    { id: "join", code: "const both = [...squares, ...doubled];" },
    { id: "alone", code: "console.log('hello');" },
  ]);
  const edges = g.edges.map((e) => `${g.cells[e.from].id}->${g.cells[e.to].id}:${e.names.join(",")}`);
  assert.deepEqual(edges, ["load->left:raw", "helpers->left:square", "load->right:raw", "left->join:squares", "right->join:doubled"]);
});

test("dependencies through shipped functions and through later assignments", () => {
  const g = buildCellGraph([
    { id: "a", code: "let base = 10;" },
    { id: "b", code: "function scale(x: number) { return x * base; }" },
    { id: "c", code: "base = 20;" },
    { id: "d", code: "const r = scale(2);" },
    { id: "e", code: "type Row = { v: number };" },
    { id: "f", code: "const rows: Row[] = [];" },
  ]);
  const edges = g.edges.map((e) => `${g.cells[e.from].id}->${g.cells[e.to].id}${e.typeOnly ? " (type)" : ""}`);
  assert.deepEqual(edges, ["a->b", "a->c", "a->d", "b->d", "c->d", "e->f (type)"]);
});

test("foreach cells get their implicit names", () => {
  const g = buildCellGraph(
    [
      { id: "items", code: "const items = [1, 2];" },
      { id: "each", code: "const sq = item * item;" },
    ],
    (i) => (i === 1 ? { implicit: ["item", "index"] } : {}),
  );
  assert.deepEqual(g.cells[1].analysis.unresolved, []);
  assert.deepEqual(g.edges, []);
});

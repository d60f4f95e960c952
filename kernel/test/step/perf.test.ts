import { test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { analyzeStep, clearCellCache, HistoryCell } from "../../src/step/analysis";

/** A notebook-like history: data cells, helpers calling earlier helpers, types, imports. */
function syntheticHistory(n: number): HistoryCell[] {
  const cells: HistoryCell[] = [];
  for (let i = 0; i < n; i++) {
    const prev = i > 0 ? `helper${i - 1}(x)` : "x";
    cells.push({
      id: `cell-${i}`,
      code: [
        `import { join as join${i} } from "node:path";`,
        `interface Row${i} { id: number; name: string; tags: string[] }`,
        `const data${i}: Row${i}[] = Array.from({ length: 100 }, (_, k) => ({ id: k, name: "n" + k, tags: [] }));`,
        `const factor${i} = ${i} + 1;`,
        `function helper${i}(x: number): number {`,
        `  const local = x * factor${i};`,
        `  for (let j = 0; j < 3; j++) { if (local > j) { return ${prev} + local; } }`,
        `  return data${i}.filter((r) => r.id > local).map((r) => r.name.length).reduce((a, b) => a + b, 0);`,
        `}`,
        `class Model${i} { constructor(private w = factor${i}) {} predict(v: number) { return helper${i}(v) * this.w; } }`,
        `console.log(join${i}("a", "b"), data${i}.length);`,
      ].join("\n"),
    });
  }
  return cells;
}

test("analysis speed against 200 history cells (reported, not asserted)", (t) => {
  const history = syntheticHistory(200);
  const body = "const m = new Model199();\nconst out = data10.map((r) => m.predict(r.id));\nconsole.log(out.length);";
  clearCellCache();
  let start = performance.now();
  analyzeStep("1", []);
  const globals = performance.now() - start;
  start = performance.now();
  const first = analyzeStep(body, history);
  const cold = performance.now() - start;
  const runs = 50;
  start = performance.now();
  for (let i = 0; i < runs; i++) analyzeStep(body + `\n// ${i}`, history);
  const warm = (performance.now() - start) / runs;
  start = performance.now();
  for (let i = 0; i < runs; i++) analyzeStep(`const small = factor3 * 2 + ${i};`, history);
  const small = (performance.now() - start) / runs;
  t.diagnostic(`one-time global table (TS lib + Node): ${globals.toFixed(1)} ms`);
  t.diagnostic(`small step (one input): ${small.toFixed(2)} ms`);
  t.diagnostic(`cold (parse 200 cells + step): ${cold.toFixed(1)} ms; warm (cached history, new body): ${warm.toFixed(2)} ms`);
  t.diagnostic(`closure ${first.closure.length} items, ${first.inputs.length} inputs`);
  // The transitive chain Model199 → helper199 → … → helper0 is all there.
  assert.equal(first.closure.filter((c) => c.kind === "function").length, 200);
  assert.equal(first.inputs.filter((i) => i.name.startsWith("factor")).length, 200);
});

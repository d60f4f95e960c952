import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExportError, exportNotebook } from "../../src/flow/export";
import { depsOf, loadFlow } from "../../src/flow/load";

type Cell = string | { md: string };
const nbIn = (language: string, ...cells: Cell[]) => ({
  cells: cells.map((c) => (typeof c === "string" ? { cell_type: "code", source: c } : { cell_type: "markdown", source: c.md })),
  metadata: { kernelspec: { name: "nbscale", language } },
});
const nb = (...cells: Cell[]) => nbIn("typescript", ...cells);

test("one step per computing cell, %%step options kept, shared definitions at top level, imports hoisted", () => {
  const r = exportNotebook(
    nb(
      { md: "# Title" },
      'import * as path from "path";\nfunction half(x: number): number {\n  return x / 2;\n}',
      "const raw = [1, 2, 3];",
      "%%step train --on local --memory 8G --cpu 2 --retries 3 --timeout 10m --env A=b\nconst model = raw.map(half);",
      "%history",
      'const name = path.basename("/a/b");',
    ),
    { notebookPath: "/x/demo.ipynb" },
  );
  assert.deepEqual(
    r.steps.map((s) => [s.name, s.cell, s.needs, s.outputs]),
    [
      ["raw", 3, [], ["raw"]],
      ["train", 4, ["raw"], ["model"]],
      ["name", 6, [], ["name"]],
    ],
  );
  assert.deepEqual(r.shared, [2]);
  assert.match(r.source, /^import \{ flow, step \} from "nbscale";\nimport \* as path from "path";$/m);
  assert.match(r.source, /\/\/ # Title\n\/\/ ── cell 2: shared definitions\nfunction half/);
  assert.match(
    r.source,
    /const train = step\("train", \{ on: "local", memory: "8G", cpu: 2, retries: 3, timeout: "10m", env: \{ A: "b" \}, inputs: \{ raw: raw\.raw \} \}, \(\{ raw \}\) => \{\nconst model = raw\.map\(half\);\nreturn \{ model \};\n\}\);/,
  );
  assert.match(r.source, /export default flow\("demo", \[raw, train, name\]\);/);
  assert.deepEqual(
    r.warnings.map((w) => w.cell),
    [5],
  );
});

test("the exported flow is a DAG: independent branches don't depend on each other", () => {
  const r = exportNotebook(nb("const a = 1;", "const left = a + 1;", "const right = a * 2;", "const both = left + right;"), { notebookPath: "/x/dag.ipynb" });
  assert.deepEqual(Object.fromEntries(r.steps.map((s) => [s.name, s.needs])), { a: [], left: ["a"], right: ["a"], both: ["left", "right"] });
});

test("an input comes from the latest step that assigns it", () => {
  const r = exportNotebook(nb("let n = 1;", "n = n + 1;", "const m = n * 10;"), { notebookPath: "/x/a.ipynb" });
  assert.deepEqual(
    r.steps.map((s) => [s.name, s.inputs.map((i) => `${i.name}<-${i.step}`), s.outputs]),
    [
      ["n", [], ["n"]],
      ["cell_2", ["n<-n"], ["n"]],
      ["m", ["n<-cell_2"], ["m"]],
    ],
  );
});

test("foreach: implicit item/index and the expression's inputs", () => {
  const r = exportNotebook(nb("const items = [1, 2];", "%%step fit --foreach items --parallel 2\nconst sq = item * item + index;"), {
    notebookPath: "/x/f.ipynb",
  });
  assert.match(
    r.source,
    /step\("fit", \{ parallel: 2, foreach: \(\{ items \}\) => \(items\), inputs: \{ items: items\.items \} \}, \(\{ item, index \}\) => \{/,
  );
});

test("bad input: no code cells, another language, a magic error, a function shared from a computing cell, an undefined name", () => {
  assert.throws(() => exportNotebook(nb({ md: "only text" }), { notebookPath: "/x/e.ipynb" }), /has no code cells/);
  assert.throws(() => exportNotebook(nbIn("python", "x = 1"), { notebookPath: "/x/p.ipynb" }), /is a python notebook/);
  assert.throws(
    () => exportNotebook(nb("%%bash\nls"), { notebookPath: "/x/m.ipynb" }),
    (e: unknown) => e instanceof ExportError && /cell 1: unknown cell magic %%bash/.test(e.message),
  );
  assert.throws(
    () => exportNotebook(nb("const k = 2;\nfunction f(x: number) { return x * 3; }", "const y = f(k);"), { notebookPath: "/x/s.ipynb" }),
    /cell 2: uses `f`, which cell 1 declares next to code that computes values.*Move it into a cell of its own/,
  );
  const r = exportNotebook(nb("const y = undefinedThing + 1;"), { notebookPath: "/x/u.ipynb" });
  assert.equal(r.warnings[0].cell, 1);
  assert.match(r.warnings[0].message, /`undefinedThing` is not defined in this notebook/);
});

test("the exported file loads as a flow with the same DAG; code hashes change only with the step's code", () => {
  const dir = mkdtempSync(join(tmpdir(), "nbscale-flow-test-"));
  const r = exportNotebook(nb("function sq(x: number) { return x * x; }", "const a = 2;", "const b = sq(a);", "const c = a + 1;"), {
    notebookPath: join(dir, "t.ipynb"),
  });
  const file = join(dir, "t.flow.ts");
  writeFileSync(file, r.source);
  const one = loadFlow(file, { cacheDir: null });
  assert.deepEqual(Object.fromEntries(one.flow.steps.map((s) => [s.name, depsOf(s)])), { a: [], b: ["a"], c: ["a"] });
  writeFileSync(file, r.source.replace("const c = a + 1;", "const c = a + 2;").replace("// ── cell 2", "// a comment\n// ── cell 2"));
  const two = loadFlow(file, { cacheDir: null });
  assert.equal(two.steps.get("a")!.codeSha256, one.steps.get("a")!.codeSha256, "a comment between statements changes nothing");
  assert.equal(two.steps.get("b")!.codeSha256, one.steps.get("b")!.codeSha256);
  assert.notEqual(two.steps.get("c")!.codeSha256, one.steps.get("c")!.codeSha256);
  writeFileSync(file, r.source.replace("return x * x;", "return x * x * 1;"));
  const three = loadFlow(file, { cacheDir: null });
  assert.notEqual(three.steps.get("a")!.codeSha256, one.steps.get("a")!.codeSha256, "shared code is part of every step's hash");
});

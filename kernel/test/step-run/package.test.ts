import { test } from "node:test";
import assert from "node:assert/strict";
import { analyzeStep } from "../../src/step/analysis";
import { declaredTypes, packageStep } from "../../src/step/package";
import { mapRemoteError } from "../../src/step/remote-error";
import { encodeValues, decodeValues } from "../../src/worker/codec";
import { runProgram } from "../../src/worker/runner";
import { stepRequire } from "../../src/worker/require";

const history = [
  { id: "1", code: "const base = 10;\nclass Box { constructor(public v: number) {} twice() { return this.v * 2; } }" },
  { id: "2", code: 'import * as path from "path";\nfunction scale(x: number) {\n  if (x < 0) throw new RangeError("negative");\n  return x * base;\n}' },
  { id: "3", code: "const box = new Box(4);" },
];

async function run(body: string, values: Record<string, unknown>) {
  // The dispatcher names classes of instance inputs this way (see StepRunner.analyze).
  const analysis = analyzeStep(values.box ? `${body}\n;void [Box];` : body, history);
  const pkg = packageStep(body, analysis, history);
  const enc = encodeValues(
    pkg.inputs.map((n) => [n, values[n]]),
    true,
  );
  const outputs = await runProgram(
    pkg.program,
    { inputs: async (rc) => Object.fromEntries(await decodeValues(enc.specs, enc.frames, rc)) },
    { require: stepRequire(process.cwd()) },
  );
  return { pkg, outputs };
}

test("a step runs with shipped functions, imports, classes and data inputs; only top-level names come back", async () => {
  const body = 'const total = scale(2) + box.twice();\nconst joined = path.join("a", "b");\n{ const inner = 1; }';
  const { pkg, outputs } = await run(body, {
    base: 10,
    box: new (class Box {
      constructor(public v: number) {}
    })(4),
  });
  assert.deepEqual(pkg.inputs.sort(), ["base", "box"]);
  assert.deepEqual(outputs, { total: 28, joined: "a/b" });
});

test("top-level await and a body that redeclares a shipped name", async () => {
  const { outputs } = await run("const base = await Promise.resolve(1);\nconst s = scale(3);", { base: 10 });
  // scale reads the notebook's base (shipped), not the body's own.
  assert.deepEqual(outputs, { base: 1, s: 30 });
});

test("a worker's stack trace maps to the body line and the cell of a shipped function", async () => {
  const body = "const a = 1;\n\nconst b = scale(-a);";
  const analysis = analyzeStep(body, history);
  const pkg = packageStep(body, analysis, history);
  const enc = encodeValues([["base", 10]], true);
  let error: Error | undefined;
  try {
    await runProgram(
      pkg.program,
      { inputs: async (rc) => Object.fromEntries(await decodeValues(enc.specs, enc.frames, rc)) },
      { require: stepRequire(process.cwd()) },
    );
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error);
  const mapped = mapRemoteError({ name: error.name, message: error.message, stack: error.stack }, pkg, body, 1, "in a test");
  // eslint-disable-next-line no-control-regex -- strips the traceback's colours
  const text = mapped.traceback.join("\n").replace(/\u001b\[[0-9;]*m/g, "");
  assert.equal(mapped.ename, "RangeError");
  assert.match(text, /at scale \(from cell 2, line 3\)/);
  assert.match(text, /at <cell> \(cell, line 4\)/);
});

test("declared types come from the checker's declaration output", () => {
  const decl = "declare const total: number;\ndeclare const q: number, r: Map<string, number[]>;\ndeclare const lit = 10;\ndeclare const total: string;\n";
  assert.deepEqual(declaredTypes(decl, ["total", "q", "r", "lit"]), { total: "number", q: "number", r: "Map<string, number[]>", lit: "10" });
});

test("the notebook's own modules travel inside the program: a target without the notebook folder runs them", async () => {
  const { mkdtempSync, mkdirSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { shipLocalModules } = await import("../../src/step/local-modules");
  const nb = mkdtempSync(join(tmpdir(), "nbscale-nb-"));
  mkdirSync(join(nb, "lib"));
  writeFileSync(join(nb, "lib", "util.ts"), "export const twice = (x: number): number => x * 2;\n");
  writeFileSync(
    join(nb, "lib", "clean.ts"),
    'import { twice } from "./util";\nimport cfg from "../cfg.json";\nexport default function clean(s: string): string { return s.trim() + twice(cfg.n); }\nexport const tag = "t";\n',
  );
  writeFileSync(join(nb, "cfg.json"), '{"n": 21}');
  const cells = [{ id: "1", code: 'import clean, { tag as label } from "./lib/clean";\nimport * as lib from "./lib/clean";' }];
  const body = 'const out = clean(" x ") + label + lib.tag;';
  const analysis = analyzeStep(body, cells);
  const modules = shipLocalModules(nb, [body, ...analysis.closure.map((c) => c.source)]);
  assert.deepEqual(Object.keys(modules).sort(), ["cfg.json", "lib/clean.ts", "lib/util.ts"]);
  const pkg = packageStep(body, analysis, cells, modules);
  // Another folder, as a Batch container has: nothing of the notebook on disk.
  const elsewhere = mkdtempSync(join(tmpdir(), "nbscale-target-"));
  const outputs = await runProgram(pkg.program, { inputs: async () => ({}) }, { require: stepRequire(elsewhere), cwd: elsewhere });
  assert.deepEqual(outputs, { out: "x42tt" });
});

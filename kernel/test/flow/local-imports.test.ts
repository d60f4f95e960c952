import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { loadFlow } from "../../src/flow/load";
import { importsUsedBy, LocalModules, relativeSpecifiers, resolveLocal } from "../../src/flow/local-imports";

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "nbscale-local-imports-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const FLOW = `import { flow, step } from "nbscale";
import { scale } from "./lib";
import * as helpers from "./helpers";
import "./setup";
const base = () => helpers.base();
const a = step("a", {}, () => {
const x = scale(2);
return { x };
});
const b = step("b", {}, () => {
const y = base();
return { y };
});
const c = step("c", {}, () => {
const cfg = require("./conf.json");
const z = cfg.z as number;
return { z };
});
export default flow("local", [a, b, c]);
`;

const FILES = {
  "flow.ts": FLOW,
  "lib.js": 'exports.scale = (x) => x * require("./deep/util").factor;\n',
  "deep/util.js": 'const again = require("../lib"); // a cycle\nexports.factor = 3;\n',
  "helpers.js": "exports.base = () => 1;\n",
  "setup.js": "globalThis.setUp = true;\n",
  "conf.json": '{"z": 1}',
};

test("each step's hash covers the local modules its code runs, transitively, and those every step shares", () => {
  for (const cacheDir of [null, undefined]) {
    const dir = folder(FILES);
    const opts = { cacheDir: cacheDir === null ? null : join(dir, "cache") };
    const steps = loadFlow(join(dir, "flow.ts"), opts).steps;
    const files = (name: string) => Object.keys(steps.get(name)!.modules);
    // shared code (`base`) uses ./helpers and ./setup is a side-effect import: every step has them
    assert.deepEqual(files("a"), ["deep/util.js", "helpers.js", "lib.js", "setup.js"]);
    assert.deepEqual(files("b"), ["helpers.js", "setup.js"]);
    assert.deepEqual(files("c"), ["conf.json", "helpers.js", "setup.js"]);

    const before = Object.fromEntries([...steps].map(([k, v]) => [k, v.codeSha256]));
    const again = loadFlow(join(dir, "flow.ts"), opts).steps; // from the compile cache, when there is one
    assert.deepEqual(Object.fromEntries([...again].map(([k, v]) => [k, v.codeSha256])), before);

    writeFileSync(join(dir, "deep/util.js"), "exports.factor = 4;\n");
    let now = loadFlow(join(dir, "flow.ts"), opts).steps;
    assert.notEqual(now.get("a")!.codeSha256, before.a);
    assert.equal(now.get("b")!.codeSha256, before.b);
    assert.equal(now.get("c")!.codeSha256, before.c);

    writeFileSync(join(dir, "helpers.js"), "exports.base = () => 2;\n");
    now = loadFlow(join(dir, "flow.ts"), opts).steps;
    for (const s of ["a", "b", "c"]) assert.notEqual(now.get(s)!.codeSha256, before[s]);
  }
});

test("a flow without local imports hashes as before (earlier runs' records stay reusable)", () => {
  const dir = folder({
    "flow.ts": 'import { flow, step } from "nbscale";\nconst a = step("a", {}, () => {\nconst x = 1;\nreturn { x };\n});\nexport default flow("plain", [a]);\n',
  });
  const loaded = loadFlow(join(dir, "flow.ts"), { cacheDir: null });
  const a = loaded.steps.get("a")!;
  assert.deepEqual(a.modules, {});
  const sha = (t: string) => createHash("sha256").update(t, "utf8").digest("hex");
  assert.equal(a.codeSha256, sha(JSON.stringify({ shared: loaded.sharedSha256, text: a.text, foreach: a.foreachText })));
});

test("resolution follows Node's and TypeScript's rules, and leaves node_modules and missing files out", () => {
  const dir = folder({ "a.ts": "", "b/index.js": "", "c.json": "{}", "node_modules/x/index.js": "", "d.ts": "" });
  assert.equal(resolveLocal(dir, "./a"), join(dir, "a.ts"));
  assert.equal(resolveLocal(dir, "./a.js"), join(dir, "a.ts")); // `./a.js` in TypeScript source names a.ts
  assert.equal(resolveLocal(dir, "./b"), join(dir, "b/index.js"));
  assert.equal(resolveLocal(dir, "./c.json"), join(dir, "c.json"));
  assert.equal(resolveLocal(dir, "./nope"), null);
  writeFileSync(join(dir, "e.js"), 'require("./node_modules/x"); import("./d"); export * from "./a"; import "./c.json";');
  const hashes = new LocalModules(join(dir, "flow.ts")).hashes(["./e", "./gone"]);
  assert.deepEqual(Object.keys(hashes), ["a.ts", "c.json", "d.ts", "e.js", "missing:./gone"]);
  assert.deepEqual(relativeSpecifiers('import x from "./x"; const y = require( "../y" ); import z from "z";'), ["./x", "../y"]);
  assert.deepEqual(
    importsUsedBy("const v = scale(1) + other", [
      { specifier: "./lib", names: ["scale"] },
      { specifier: "./o", names: ["unused"] },
    ]),
    ["./lib"],
  );
});

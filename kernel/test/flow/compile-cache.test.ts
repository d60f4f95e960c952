import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFlow, FlowLoadError } from "../../src/flow/load";

const FLOW = `import { flow, step } from "nbscale";
function twice(n: number): number { return n * 2; }
const a = step("a", {}, () => {
function helper() { return 1; }
const x: number = twice(helper());
return { x };
});
const b = step("b", { inputs: { x: a.x } }, ({ x }) => {
const y = x + 1;
return { y };
});
export default flow("cached", [a, b]);
`;

function setup(): { dir: string; cache: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "nbscale-cache-test-"));
  return { dir, cache: join(dir, "cache"), file: join(dir, "flow.ts") };
}

const entries = (cache: string): string[] => {
  try {
    return readdirSync(join(cache, "flows"));
  } catch {
    return [];
  }
};

test("an unchanged flow comes from the cache with the same steps, code hashes and function sources", () => {
  const { cache, file } = setup();
  writeFileSync(file, FLOW);
  const first = loadFlow(file, { cacheDir: cache });
  const second = loadFlow(file, { cacheDir: cache });
  assert.equal(first.cached, false);
  assert.equal(second.cached, true);
  assert.equal(entries(cache).length, 1);
  assert.equal(second.js, first.js);
  assert.deepEqual([...second.steps], [...first.steps]);
  assert.ok(first.steps.get("a")!.functionSources.helper, "the step's own function is recorded as source");
  assert.deepEqual(
    second.flow.steps.map((s) => s.name),
    ["a", "b"],
  );
});

test("a warm cache never loads the TypeScript compiler", () => {
  const { cache, file } = setup();
  writeFileSync(file, FLOW);
  const probe = (): boolean => {
    const script =
      `const { loadFlow } = require(${JSON.stringify(require.resolve("../../src/flow/load"))});` +
      `loadFlow(${JSON.stringify(file)}, { cacheDir: ${JSON.stringify(cache)} });` +
      `process.stdout.write(String(Object.keys(require.cache).some((k) => k.includes("typescript"))));`;
    return execFileSync(process.execPath, ["-e", script], { encoding: "utf8" }) === "true";
  };
  assert.equal(probe(), true, "a cold cache compiles");
  assert.equal(probe(), false, "a warm cache does not");
});

test("an edited flow is recompiled, and its code hashes follow the edit", () => {
  const { cache, file } = setup();
  writeFileSync(file, FLOW);
  const before = loadFlow(file, { cacheDir: cache });
  writeFileSync(file, FLOW.replace("x + 1", "x + 2"));
  const after = loadFlow(file, { cacheDir: cache });
  assert.equal(after.cached, false);
  assert.equal(entries(cache).length, 2);
  assert.equal(after.steps.get("a")!.codeSha256, before.steps.get("a")!.codeSha256);
  assert.notEqual(after.steps.get("b")!.codeSha256, before.steps.get("b")!.codeSha256);
});

test("a syntax error is thrown on every load and not cached", () => {
  const { cache, file } = setup();
  writeFileSync(file, FLOW.replace("const y = x + 1;", "const y = = x + 1;"));
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => loadFlow(file, { cacheDir: cache }),
      (e: unknown) => e instanceof FlowLoadError && /flow\.ts:9:\d+: /.test(e.message),
    );
    assert.deepEqual(entries(cache), []);
  }
});

test("with the cache off nothing is written", () => {
  const { cache, file } = setup();
  writeFileSync(file, FLOW);
  assert.equal(loadFlow(file, { cacheDir: null }).cached, false);
  assert.equal(loadFlow(file, { cacheDir: null }).cached, false);
  assert.deepEqual(entries(cache), []);
});

/**
 * The Recorder on a real Executor (tslab) and a real datastore, without the
 * protocol: what a cell records as inputs/outputs, versions, types, failures.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor } from "../../src/session/executor";
import { Recorder, notebookPath, parseDeclaredTypes } from "../../src/session/recording";
import { Datastore } from "../../src/store";
import type { JupyterMessage } from "../../src/protocol/message";

const PACKAGE_DIR = join(__dirname, "..", "..", "..");

let n = 0;
function msg(cellId?: string): JupyterMessage {
  n++;
  return {
    header: { msg_id: `m${n}`, msg_type: "execute_request", username: "", session: "", date: "", version: "5.3" },
    parent_header: {},
    metadata: cellId ? { cellId } : {},
    content: {},
  } as unknown as JupyterMessage;
}

async function setup(env: NodeJS.ProcessEnv = {}) {
  const dir = await mkdtemp(join(tmpdir(), "nbs-rec-"));
  const executor = new Executor({ cwd: dir, packageDir: PACKAGE_DIR, builtinModules: {} });
  const warnings: string[] = [];
  const recorder = new Recorder({ cwd: dir, env, executor, warn: (_p, t) => warnings.push(t) });
  let count = 0;
  const run = async (code: string, cellId?: string) => {
    const started = new Date();
    const outcome = await executor.execute(code);
    await recorder.record({ msg: msg(cellId), code, executionCount: ++count, started, outcome });
    return outcome;
  };
  const latest = async () => (await (await Datastore.open(join(dir, ".nbscale"))).history({ limit: 1 }))[0];
  const cleanup = async () => {
    executor.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { dir, executor, recorder, run, latest, warnings, cleanup };
}

test("declared types are read from the session's declarations; literal consts are widened", () => {
  const t = parseDeclaredTypes(
    'declare const x = 1;\ndeclare let y: number[];\ndeclare const o: {\n    a: number;\n};\ndeclare const s = "hi";\ndeclare function f(a: number): number;\n',
  );
  assert.equal(t.get("x"), "number");
  assert.equal(t.get("y"), "number[]");
  assert.match(t.get("o") ?? "", /a: number;/);
  assert.equal(t.get("s"), "string");
  assert.equal(t.has("f"), false);
});

test("the notebook is JPY_SESSION_NAME (absolute, or relative to the kernel's folder), else the working directory", () => {
  assert.equal(notebookPath({ JPY_SESSION_NAME: "/a/b/nb.ipynb" }, "/a/b"), "/a/b/nb.ipynb");
  assert.equal(notebookPath({ JPY_SESSION_NAME: "b/nb.ipynb" }, "/a/b"), "/a/b/nb.ipynb");
  assert.equal(notebookPath({}, "/a/b"), "/a/b");
  assert.equal(notebookPath({ NBSCALE_NOTEBOOK: "x.ipynb", JPY_SESSION_NAME: "/y.ipynb" }, "/a"), "/a/x.ipynb");
});

test("declared, assigned and in-place-mutated names become versions; reads are inputs", async () => {
  const s = await setup();
  try {
    await s.run("let arr = [1, 2, 3]", "c1");
    let r = await s.latest();
    assert.equal(r.cell, "c1");
    assert.deepEqual(Object.keys(r.outputs), ["arr"]);
    assert.equal(r.outputs.arr.ts_type, "number[]");

    await s.run("arr.push(4)");
    r = await s.latest();
    assert.equal(r.outputs.arr.version, 2);
    assert.equal(r.inputs.arr.version, 1);
    assert.equal(r.cell, "headless-2");

    await s.run("const total = arr.reduce((a, b) => a + b, 0)");
    r = await s.latest();
    assert.deepEqual(Object.keys(r.outputs), ["total"]);
    assert.equal(r.outputs.total.ts_type, "number");
    assert.equal(r.inputs.arr.version, 2);
  } finally {
    await s.cleanup();
  }
});

test("failed cells are recorded with their error and no outputs", async () => {
  const s = await setup();
  try {
    await s.run("let v = 1");
    await s.run("v = 2; throw new Error('nope')");
    const r = await s.latest();
    assert.equal(r.status, "error");
    assert.equal(r.error?.evalue, "nope");
    assert.deepEqual(r.outputs, {});
    assert.equal(r.inputs.v.version, 1);
  } finally {
    await s.cleanup();
  }
});

test("functions are versioned as their TypeScript source", async () => {
  const s = await setup();
  try {
    await s.run("function twice(a: number): number { return a * 2 }");
    const r = await s.latest();
    assert.equal(r.outputs.twice.kind, "source");
    const ds = await Datastore.open(join(s.dir, ".nbscale"));
    const got = await ds.restore("twice");
    assert.equal(got.value, "function twice(a: number): number { return a * 2 }");
  } finally {
    await s.cleanup();
  }
});

test("a storage failure is one warning, never an exception", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nbs-rec-bad-"));
  const blocker = join(dir, "file");
  await writeFile(blocker, "x");
  const s = await setup({ NBSCALE_DATASTORE: blocker });
  try {
    const outcome = await s.run("const q = 1");
    assert.equal(outcome.ok, true);
    assert.equal(s.warnings.length, 1);
    assert.match(s.warnings[0], /not recorded/);
  } finally {
    await s.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
});

test("NBSCALE_RECORD=0 turns recording off", async () => {
  const s = await setup({ NBSCALE_RECORD: "0" });
  try {
    await s.run("const q = 1");
    await assert.rejects(Datastore.open(join(s.dir, ".nbscale")));
  } finally {
    await s.cleanup();
  }
});

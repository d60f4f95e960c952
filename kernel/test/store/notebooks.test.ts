import { test } from "node:test";
import assert from "node:assert/strict";
import { Datastore } from "../../src/store";
import { resolveServerPath, serverRootOf } from "../../src/session/recording";
import { tmpStoreDir } from "./helpers";

const A = "/srv/nb/analysis.ipynb";
const B = "/srv/nb/final.ipynb";
const C = "/srv/other/final.ipynb";

function run(notebook: string, outputs: Record<string, unknown>, lineage?: Awaited<ReturnType<Datastore["notebooks"]["lineage"]>>) {
  return { notebook, ...(lineage ? { lineage } : {}), cell: "c1", code: "x", outputs, status: "ok" as const, started: new Date(), target: "kernel" };
}

test("history, versions and version reuse follow a notebook through renames", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    await ds.recordExecution(run(A, { model: [1, 2, 3] }));
    await ds.notebooks.record(A, B);
    const lineageB = await ds.notebooks.lineage(B);
    assert.deepEqual(
      lineageB.map((a) => a.path),
      [B, A],
    );
    // Unchanged value after the rename: same version, not a new one.
    const again = await ds.recordExecution(run(B, { model: [1, 2, 3] }, lineageB));
    assert.equal(again.outputs.model.version, 1);
    assert.equal(again.outputs.model.new_version, false);
    await ds.notebooks.record(B, C);
    const lineageC = await ds.notebooks.lineage(C);
    assert.deepEqual(
      lineageC.map((a) => a.path),
      [C, B, A],
    );
    assert.equal((await ds.history({ notebook: lineageC })).length, 2, "both executions belong to the moved notebook");
    assert.equal((await ds.versions("model", { notebook: lineageC })).length, 1);
    assert.equal((await ds.resolve("model", { notebook: lineageC })).version, 1);
  } finally {
    await cleanup();
  }
});

test("a new notebook created under an old name does not inherit the renamed notebook's later history", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    await ds.recordExecution(run(A, { x: 1 }));
    await new Promise((r) => setTimeout(r, 5));
    await ds.notebooks.record(A, B);
    await new Promise((r) => setTimeout(r, 5));
    // Someone creates a fresh analysis.ipynb afterwards.
    await ds.recordExecution(run(A, { x: 2 }));
    const lineageB = await ds.notebooks.lineage(B);
    const history = await ds.history({ notebook: lineageB });
    assert.equal(history.length, 1, "only the execution from before the rename");
    assert.equal((await ds.resolve("x", { notebook: lineageB })).version, 1);
    // And the new A sees only its own execution.
    assert.equal((await ds.history({ notebook: await ds.notebooks.lineage(A) })).length, 2, "A's lineage is A: both records carry its name");
    assert.equal((await ds.history({ notebook: A })).length, 2);
  } finally {
    await cleanup();
  }
});

test("rename cycles terminate", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    await ds.notebooks.record(A, B);
    await new Promise((r) => setTimeout(r, 2));
    await ds.notebooks.record(B, A);
    const lineage = await ds.notebooks.lineage(A);
    assert.deepEqual(
      lineage.map((a) => a.path),
      [A, B],
    );
  } finally {
    await cleanup();
  }
});

test("server paths resolve against the server root, and hostile ones are refused", () => {
  assert.equal(serverRootOf({ JPY_SESSION_NAME: "projects/nb/a.ipynb" }, "/home/u/projects/nb"), "/home/u");
  assert.equal(serverRootOf({ JPY_SESSION_NAME: "a.ipynb" }, "/home/u"), "/home/u");
  assert.equal(serverRootOf({ JPY_SESSION_NAME: "x/a.ipynb" }, "/elsewhere"), null);
  assert.equal(serverRootOf({}, "/home/u"), null);
  assert.equal(resolveServerPath("projects/b.ipynb", "/home/u", "/home/u/projects/nb"), "/home/u/projects/b.ipynb");
  assert.equal(resolveServerPath("projects/nb/b.ipynb", null, "/home/u/projects/nb"), "/home/u/projects/nb/b.ipynb");
  for (const bad of ["", "../x.ipynb", "a/../../x.ipynb", "/etc/passwd", "a\0b.ipynb"]) {
    assert.throws(() => resolveServerPath(bad, "/home/u", "/home/u"), /path/, bad);
  }
});

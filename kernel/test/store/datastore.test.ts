import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  ContentChangedError,
  CorruptArtifactError,
  Datastore,
  FsBackend,
  NoSuchVersionError,
  NotRestorableError,
  UnknownVariableError,
  blobKey,
  fsck,
} from "../../src/store";
import { REMOTE_WRITER, deadWriter, treeBytes, tmpStoreDir } from "./helpers";

const NB = "/work/notebooks/analysis.ipynb";

function cell(code: string, outputs: Record<string, unknown>, extra: Partial<Parameters<Datastore["recordExecution"]>[0]> = {}) {
  return { notebook: NB, cell: "cell-1", code, outputs, status: "ok" as const, started: new Date(), target: "kernel", ...extra };
}

test("re-recording an unchanged 32 MB value adds no blob bytes and no version", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const big = new Float64Array((32 << 20) / 8).map((_, i) => i);
    const r1 = await ds.recordExecution(cell("const big = ...", { big }));
    const blobBytes1 = await treeBytes(join(dir, "blobs"));
    assert.ok(blobBytes1 >= 32 << 20);
    const r2 = await ds.recordExecution(cell("const big = ...", { big }));
    const blobBytes2 = await treeBytes(join(dir, "blobs"));
    assert.equal(blobBytes2, blobBytes1, "no new blob bytes");
    assert.deepEqual(r2.outputs.big, { ...r1.outputs.big, new_version: false });
    assert.equal(r2.outputs.big.version, 1);
    assert.equal((await ds.history()).length, 2, "both executions are recorded");
    // A fresh but equal array dedups too (same bytes → same sha256).
    const r3 = await ds.recordExecution(cell("const big = ...", { big: new Float64Array(big) }));
    assert.equal(r3.outputs.big.version, 1);
    assert.equal(await treeBytes(join(dir, "blobs")), blobBytes1);
  } finally {
    await cleanup();
  }
});

test("a new version only when the bytes change, including in-place mutation", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const arr = [1, 2, 3];
    const obj: Record<string, number> = {};
    const v = async (code: string) => {
      const r = await ds.recordExecution(cell(code, { arr, obj }));
      return [r.outputs.arr.version, r.outputs.obj.version];
    };
    assert.deepEqual(await v("const arr = [1,2,3]; const obj = {}"), [1, 1]);
    assert.deepEqual(await v("arr"), [1, 1]);
    arr.push(4);
    assert.deepEqual(await v("arr.push(4)"), [2, 1]);
    obj.k = 1;
    assert.deepEqual(await v("obj.k = 1"), [2, 2]);
    assert.deepEqual(await v("nothing"), [2, 2]);
    arr.pop();
    assert.deepEqual(await v("arr.pop()"), [3, 2], "going back to old bytes is still a change");
    assert.deepEqual((await ds.restore("arr@1")).value, [1, 2, 3]);
    assert.deepEqual((await ds.restore("arr@2")).value, [1, 2, 3, 4]);
    assert.deepEqual((await ds.restore("arr")).value, [1, 2, 3]);
    assert.equal((await ds.restore("arr")).record.version, 3);
    assert.deepEqual(
      (await ds.versions("arr")).map((r) => r.version),
      [1, 2, 3],
    );
  } finally {
    await cleanup();
  }
});

test("another notebook's versions interleave in one sequence; unchanged values reuse the notebook's own latest", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const a = await ds.recordExecution(cell("df = 1", { df: 1 }));
    const b = await ds.recordExecution(cell("df = 2", { df: 2 }, { notebook: "/other.ipynb" }));
    const a2 = await ds.recordExecution(cell("df = 1", { df: 1 }));
    assert.deepEqual([a.outputs.df.version, b.outputs.df.version, a2.outputs.df.version], [1, 2, 1]);
    assert.equal((await ds.resolve("df", { notebook: NB })).version, 1);
    assert.equal((await ds.resolve("df")).version, 2);
    assert.deepEqual(
      (await ds.versions("df", { notebook: "/other.ipynb" })).map((r) => r.version),
      [2],
    );
  } finally {
    await cleanup();
  }
});

test("versions stay in order across writers when a store only looks above what it knows, even over a hole", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const a = await Datastore.open(dir, { create: true });
    const b = await Datastore.open(dir);
    assert.equal((await a.recordExecution(cell("x = 1", { x: 1 }))).outputs.x.version, 1);
    // Another writer's versions, which `a` has not listed: found by looking above its highest.
    assert.equal((await b.recordExecution(cell("x = 2", { x: 2 }))).outputs.x.version, 2);
    assert.equal((await b.recordExecution(cell("x = 3", { x: 3 }))).outputs.x.version, 3);
    assert.equal((await a.recordExecution(cell("x = 4", { x: 4 }))).outputs.x.version, 4);
    // A hole (a leftover fsck removed) under another writer's newer version: `a` must not fill it.
    assert.equal((await b.recordExecution(cell("x = 5", { x: 5 }))).outputs.x.version, 5);
    assert.equal((await b.recordExecution(cell("x = 6", { x: 6 }))).outputs.x.version, 6);
    await a.backend.remove("vars/x/0000000005.json");
    const late = await a.recordExecution(cell("x = 7", { x: 7 }));
    assert.equal(late.outputs.x.version, 7);
    assert.equal(await a.backend.stat("vars/x/0000000005.json"), null, "the hole stays a hole");
    const fresh = await Datastore.open(dir);
    assert.deepEqual(await fresh.artifacts.allocated("x"), [1, 2, 3, 4, 6, 7]);
    assert.equal((await fresh.resolve("x")).version, 7);
  } finally {
    await cleanup();
  }
});

test("a corrupted blob is refused with the artifact's name and hash, in-band or out-of-band", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const r = await ds.recordExecution(cell("x", { small: { k: "v" }, big: new Float64Array(100_000).fill(2) }));
    for (const [name, offsetFromEnd] of [
      ["small", 3],
      ["big", 100],
    ] as const) {
      const sha = r.outputs[name].sha256;
      const file = join(dir, ...blobKey(sha).split("/"));
      await chmod(file, 0o644);
      const bytes = await readFile(file);
      bytes[bytes.length - offsetFromEnd] ^= 0x01;
      await writeFile(file, bytes);
      // A fresh store object: nothing cached.
      const fresh = await Datastore.open(dir);
      await assert.rejects(fresh.restore(name), (e: unknown) => {
        assert.ok(e instanceof CorruptArtifactError);
        assert.match(e.message, new RegExp(`Artifact ${name}@1 is corrupt: blob sha256:${sha}`));
        return true;
      });
    }
    const result = await fsck(new FsBackend(dir));
    assert.equal(result.consistent, false);
    assert.equal(result.problems.filter((p) => p.kind === "corrupt-blob").length, 2);
    assert.ok(result.problems.some((p) => /it holds big@1/.test(p.message)));
  } finally {
    await cleanup();
  }
});

test("a truncated blob is refused", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const r = await ds.recordExecution(cell("x", { v: new Uint8Array(200_000).fill(9) }));
    const file = join(dir, ...blobKey(r.outputs.v.sha256).split("/"));
    await chmod(file, 0o644);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 1000));
    await assert.rejects((await Datastore.open(dir)).restore("v@1"), CorruptArtifactError);
  } finally {
    await cleanup();
  }
});

test("the backend refuses to publish bytes that changed while being written", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const backend = new FsBackend(dir);
    const data = new Uint8Array(1 << 20).fill(1);
    await assert.rejects(backend.putIfAbsent("blobs/sha256/00/x", [data], { sha256: "0".repeat(64) }), ContentChangedError);
    assert.equal(await backend.stat("blobs/sha256/00/x"), null, "nothing published");
    assert.deepEqual(await backend.listTemp(), [], "temp file removed");
  } finally {
    await cleanup();
  }
});

test("an execution and its versions are invisible until the record commits", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    await ds.recordExecution(cell("v = 1", { v: 1 }));
    // What a kernel killed between allocating a version and committing leaves
    // behind (v@2), and what a writer on another host left (ghost@1):
    const put = await ds.blobs.put([Buffer.from("whatever")]);
    const dead = await Datastore.open(dir, { writer: deadWriter() });
    await dead.artifacts.record("v", {
      sha256: put.sha256,
      size: put.size,
      kind: "v8",
      type: "number",
      notebook: NB,
      cell: "c",
      execution: "20990101T000000000Z-deadbeef",
    });
    const remote = await Datastore.open(dir, { writer: REMOTE_WRITER });
    await remote.artifacts.record("ghost", {
      sha256: put.sha256,
      size: put.size,
      kind: "v8",
      type: "number",
      notebook: NB,
      cell: "c",
      execution: "20990101T000000000Z-feedbeef",
    });
    const fresh = await Datastore.open(dir);
    assert.equal((await fresh.resolve("v")).version, 1, "v@2 is not visible");
    assert.deepEqual(
      (await fresh.versions("v")).map((r) => r.version),
      [1],
    );
    await assert.rejects(fresh.resolve("v@2"), NoSuchVersionError);
    await assert.rejects(fresh.resolve("ghost"), NoSuchVersionError);
    assert.equal((await fresh.history()).length, 1);
    // The next real version skips the allocated number instead of reusing it.
    const r = await fresh.recordExecution(cell("v = 3", { v: 3 }));
    assert.equal(r.outputs.v.version, 3);
    const check = await fsck(new FsBackend(dir));
    assert.equal(check.consistent, true);
    assert.deepEqual(check.leftovers.map((l) => [l.kind, l.id, l.writer, l.removable]).sort(), [
      ["uncommitted-version", "vars/ghost/0000000001.json", "unknown", false],
      ["uncommitted-version", "vars/v/0000000002.json", "gone", true],
    ]);
    const cleaned = await fsck(new FsBackend(dir), { clean: true, graceMs: 0 });
    assert.equal(cleaned.leftovers.filter((l) => l.removed).length, 2);
    assert.equal(cleaned.checked.abandoned, 2, "both executions fenced off before their records went");
    const after = await fsck(new FsBackend(dir));
    assert.deepEqual(after.leftovers, []);
    assert.equal(after.checked.abandoned, 2);
    assert.equal((await (await Datastore.open(dir)).history()).length, 2, "abandonment markers are no executions");
  } finally {
    await cleanup();
  }
});

test("execution records carry every field; large logs become blobs; listing filters newest first", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const first = await ds.recordExecution(cell("a = 1", { a: 1 }, { cell: "c-a", executionCount: 1, stdout: "hello\n" }));
    const bigLog = "line\n".repeat(40_000);
    const second = await ds.recordExecution({
      notebook: NB,
      cell: "c-b",
      executionCount: 2,
      code: "%%step train --memory 1G\nb = a + 1",
      step: { name: "train", options: { on: "local", memory: "1G" } },
      inputs: { a: { version: first.outputs.a.version, sha256: first.outputs.a.sha256 } },
      outputs: { b: 2, sock: Promise.resolve() },
      outputTypes: { b: "number" },
      stdout: bigLog,
      stderr: "warn\n",
      display: [{ output_type: "display_data", data: { "text/plain": "x" }, metadata: {} }],
      status: "error",
      error: { ename: "Error", evalue: "boom", traceback: ["Error: boom"] },
      started: new Date(Date.now() + 5),
      target: "local",
      worker: { host: "w1", pid: 42, id: "worker-0" },
      memory: { requestedBytes: 1 << 30, peakBytes: 123456 },
    });
    assert.ok(second.id > first.id, "ids sort by time");
    assert.ok("blob" in second.stdout && second.stdout.size === Buffer.byteLength(bigLog));
    assert.equal(await ds.executions.readLog(second.stdout, "stdout"), bigLog);
    assert.deepEqual(second.stderr, { text: "warn\n", size: 5 });
    assert.equal(second.outputs.sock.kind, "stub");
    assert.equal(second.outputs.b.ts_type, "number");
    assert.equal(second.environment.node, process.version);
    assert.match(second.environment.nbscale, /^\d+\.\d+\.\d+/);
    assert.equal(second.code_sha256.length, 64);
    assert.deepEqual(second.memory, { requested_bytes: 1 << 30, peak_bytes: 123456 });
    await assert.rejects(ds.restore("sock"), NotRestorableError);

    const fresh = await Datastore.open(dir);
    assert.deepEqual(
      (await fresh.history()).map((r) => r.id),
      [second.id, first.id],
    );
    assert.deepEqual(
      (await fresh.history({ cell: "c-a" })).map((r) => r.id),
      [first.id],
    );
    assert.deepEqual(
      (await fresh.history({ variable: "a" })).map((r) => r.id),
      [second.id, first.id],
    );
    assert.deepEqual(
      (await fresh.history({ variable: "b" })).map((r) => r.id),
      [second.id],
    );
    assert.deepEqual((await fresh.history({ notebook: "/nope" })).length, 0);
    assert.deepEqual(
      (await fresh.history({ limit: 1 })).map((r) => r.id),
      [second.id],
    );
    assert.deepEqual(await fresh.executions.find(second.id.slice(0, 22)), second);
    assert.deepEqual(await fresh.executions.find(second.id.split("-")[1]), second);
    assert.equal((await fsck(new FsBackend(dir))).consistent, true);
  } finally {
    await cleanup();
  }
});

test("errors name close variables and existing versions", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    await ds.recordExecution(cell("m", { model: 1 }));
    await ds.recordExecution(cell("m", { model: 2 }));
    await assert.rejects(ds.restore("modle"), (e: unknown) => e instanceof UnknownVariableError && /Did you mean: `model`/.test(e.message));
    await assert.rejects(ds.restore("model@7"), (e: unknown) => e instanceof NoSuchVersionError && /Existing versions: model@1, model@2/.test(e.message));
    await assert.rejects(Datastore.open(join(dir, "missing")), /No datastore at .*missing/);
  } finally {
    await cleanup();
  }
});

test("store layout: names differing only in case get distinct keys; records are read-only files", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    await ds.recordExecution(cell("x", { Model: 1, model: 2, données: 3 }));
    const names = (await readdir(join(dir, "vars"))).sort();
    assert.deepEqual(names, ["%4Dodel", "donn%C3%A9es", "model"]);
    assert.deepEqual(await ds.artifacts.names(), ["Model", "données", "model"]);
    assert.equal((await ds.restore("Model")).value, 1);
    assert.equal((await ds.restore("données")).value, 3);
  } finally {
    await cleanup();
  }
});

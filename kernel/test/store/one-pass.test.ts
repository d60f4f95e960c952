/** New content is written in one pass and published under the hash computed while writing. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Datastore, prepareOutputs } from "../../src/store";
import { tmpStoreDir } from "./helpers";

test("putUnhashed publishes under the content's sha256, keeps an existing blob, leaves no temp", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(join(dir, "s"), { create: true });
    const bytes = Buffer.alloc(3 << 20, 7);
    const sha = createHash("sha256").update(bytes).digest("hex");
    const first = await ds.blobs.putUnhashed([bytes.subarray(0, 1000), bytes.subarray(1000)]);
    assert.deepEqual(first, { sha256: sha, size: bytes.length, created: true });
    assert.ok((await readFile(join(dir, "s", "blobs", "sha256", sha.slice(0, 2), sha))).equals(bytes));
    const again = await ds.blobs.putUnhashed([bytes]);
    assert.equal(again.created, false);
    assert.deepEqual(await readdir(join(dir, "s", "tmp")), []);
  } finally {
    await cleanup();
  }
});

test("prepared outputs: a new large value is written once; an unchanged one of the same size is only hashed", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(join(dir, "s"), { create: true });
    const big = new Float64Array(1 << 18).map((_, i) => i);
    const rec = (v: Float64Array) =>
      ds.recordExecution({
        notebook: "/nb",
        cell: "c",
        code: "big",
        preparedOutputs: prepareOutputs({ big: v }),
        status: "ok",
        started: new Date(),
        target: "kernel",
      });
    const r1 = await rec(big);
    const r2 = await rec(big);
    assert.equal(r1.outputs.big.version, 1);
    assert.equal(r2.outputs.big.new_version, false);
    big[5] = -1;
    const r3 = await rec(big);
    assert.equal(r3.outputs.big.version, 2);
    assert.equal((await ds.restore("big@1")).value instanceof Float64Array, true);
    assert.equal(((await ds.restore("big@2")).value as Float64Array)[5], -1);
  } finally {
    await cleanup();
  }
});

/** Chunk manifests of large blobs: written with the blob, verified on read, checked and cleaned by fsck. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, open, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Datastore, prepareOutputs } from "../../src/store";
import { CorruptArtifactError } from "../../src/store/errors";
import { fsck } from "../../src/store/fsck";
import { CHUNK_SIZE, ChunkHasher, ChunkHashName, decodeManifest, encodeManifest, MANIFEST_MIN_SIZE, manifestKey } from "../../src/store/chunk-manifest";
import { blobKey } from "../../src/store/blobs";
import { blake3 } from "../../src/store/blake3";
import { execFileSync } from "node:child_process";
import { tmpStoreDir } from "./helpers";

const b3 = () => {
  const b = blake3();
  assert.ok(b, "the BLAKE3 addon loads on this machine");
  return b;
};
const chunkHashOf = (algorithm: ChunkHashName, bytes: Uint8Array) =>
  algorithm === "blake3" ? b3().hex(bytes) : createHash("sha256").update(bytes).digest("hex");

/** A value just over the manifest threshold, with distinct bytes in every chunk. */
function bigValue(): Float64Array {
  return new Float64Array(MANIFEST_MIN_SIZE / 8 + 12345).map((_, i) => i * 1.5 - 3);
}

/** Records `value` as `big`, by cell c1 of /nb. */
function recordBig(ds: Datastore, value: Float64Array) {
  return ds.recordExecution({
    notebook: "/nb",
    cell: "c1",
    code: "big",
    preparedOutputs: prepareOutputs({ big: value }),
    status: "ok",
    started: new Date(),
    target: "kernel",
  });
}

async function storeWithBig(dir: string): Promise<{ ds: Datastore; root: string; sha: string; value: Float64Array }> {
  const root = join(dir, "s");
  const ds = await Datastore.open(root, { create: true });
  const value = bigValue();
  const rec = await recordBig(ds, value);
  return { ds, root, sha: rec.outputs.big.sha256, value };
}

const fileOf = (root: string, key: string) => join(root, ...key.split("/"));

async function writeOver(file: string, at: number, bytes: Uint8Array): Promise<void> {
  await chmod(file, 0o644); // published objects are read-only
  const fh = await open(file, "r+");
  try {
    await fh.write(bytes, 0, bytes.byteLength, at);
  } finally {
    await fh.close();
  }
}

test("BLAKE3 gives the specification's test vectors (input i % 251), for whole and incremental input", () => {
  const input = new Uint8Array(1025).map((_, i) => i % 251);
  assert.equal(b3().hex(input.subarray(0, 0)), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  assert.equal(b3().hex(input.subarray(0, 1)), "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213");
  assert.equal(b3().hex(input), "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444");
  const h = b3().create();
  h.update(input.subarray(0, 3));
  h.update(input.subarray(3));
  assert.equal(h.digest("hex"), "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444");
});

test("a large blob gets a manifest whose chunk hashes are those of its stored bytes, and reads back intact", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha, value } = await storeWithBig(dir);
    const stored = await readFile(fileOf(root, blobKey(sha)));
    assert.equal(createHash("sha256").update(stored).digest("hex"), sha);
    const m = decodeManifest(await readFile(fileOf(root, manifestKey(sha))), sha, stored.length);
    assert.ok(!("invalid" in m), JSON.stringify(m));
    assert.equal(m.chunkHash, "blake3");
    const expected: string[] = [];
    for (let off = 0; off < stored.length; off += CHUNK_SIZE) expected.push(b3().hex(stored.subarray(off, off + CHUNK_SIZE)));
    assert.deepEqual(m.chunks, expected);
    const back = (await ds.restore("big@1")).value as Float64Array;
    assert.ok(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(value.buffer)));
    assert.equal((await fsck(ds.backend)).consistent, true);
  } finally {
    await cleanup();
  }
});

test("a corrupted chunk is refused, naming the artifact and the chunk; fsck names the blob", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha } = await storeWithBig(dir);
    await writeOver(fileOf(root, blobKey(sha)), 2 * CHUNK_SIZE + 77, Buffer.from([0xff, 0xee]));
    await assert.rejects(ds.restore("big@1"), (e: unknown) => {
      assert.ok(e instanceof CorruptArtifactError);
      assert.match(e.message, /big@1/);
      assert.match(e.message, /chunk 3 of 5/);
      return true;
    });
    const r = await fsck(ds.backend);
    assert.equal(r.consistent, false);
    const p = r.problems.find((x) => x.kind === "corrupt-blob");
    assert.ok(p, JSON.stringify(r.problems));
    assert.match(p.message, /big@1/);
  } finally {
    await cleanup();
  }
});

test("a truncated blob is refused as corrupt, with or without its manifest", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha } = await storeWithBig(dir);
    const file = fileOf(root, blobKey(sha));
    await chmod(file, 0o644);
    await truncate(file, MANIFEST_MIN_SIZE - 1000);
    await assert.rejects(ds.restore("big@1"), (e: unknown) => e instanceof CorruptArtifactError && /big@1/.test(e.message));
    await rm(fileOf(root, manifestKey(sha)), { force: true });
    await assert.rejects(ds.restore("big@1"), (e: unknown) => e instanceof CorruptArtifactError && /big@1/.test(e.message));
  } finally {
    await cleanup();
  }
});

test("a manifest that disagrees with an intact blob: reads are refused, fsck names it, --clean removes it, reads work again", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha, value } = await storeWithBig(dir);
    const mfile = fileOf(root, manifestKey(sha));
    const m = decodeManifest(await readFile(mfile), sha, (await readFile(fileOf(root, blobKey(sha)))).length);
    assert.ok(!("invalid" in m));
    m.chunks[1] = b3().hex(Buffer.from("something else"));
    await chmod(mfile, 0o644);
    await writeFile(mfile, encodeManifest(m)); // self-consistent, wrong about chunk 2
    await assert.rejects(ds.restore("big@1"), (e: unknown) => e instanceof CorruptArtifactError && /big@1/.test(e.message) && /chunk 2 of 5/.test(e.message));
    const found = await fsck(ds.backend);
    assert.equal(found.consistent, false);
    const p = found.problems.find((x) => x.kind === "corrupt-manifest");
    assert.ok(p, JSON.stringify(found.problems));
    assert.equal(p.key, manifestKey(sha));
    assert.match(p.message, /chunk 2 of 5/);
    assert.ok(!found.problems.some((x) => x.kind === "corrupt-blob"), "the blob itself is intact");
    const cleaned = await fsck(ds.backend, { clean: true });
    assert.ok(cleaned.leftovers.some((l) => l.kind === "manifest" && l.removed));
    assert.equal((await fsck(ds.backend)).consistent, true);
    const back = (await ds.restore("big@1")).value as Float64Array;
    assert.equal(back[12345], value[12345]);
  } finally {
    await cleanup();
  }
});

test("a damaged manifest is ignored by reads (the whole-blob hash decides) and reported by fsck", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha, value } = await storeWithBig(dir);
    const mfile = fileOf(root, manifestKey(sha));
    const text = (await readFile(mfile, "utf8")).replace(/"chunks":\["./, '"chunks":["0');
    await chmod(mfile, 0o644);
    await writeFile(mfile, text);
    const back = (await ds.restore("big@1")).value as Float64Array;
    assert.equal(back[value.length - 1], value[value.length - 1]);
    const r = await fsck(ds.backend);
    const p = r.problems.find((x) => x.kind === "corrupt-manifest");
    assert.ok(p, JSON.stringify(r.problems));
    assert.match(p.message, /checksum/);
    // And a corrupted blob under a damaged manifest is still refused.
    await writeOver(fileOf(root, blobKey(sha)), CHUNK_SIZE * 4 + 8, Buffer.from([1, 2, 3]));
    await assert.rejects(ds.restore("big@1"), (e: unknown) => e instanceof CorruptArtifactError && /hashes to/.test(e.message));
  } finally {
    await cleanup();
  }
});

test("a store written before manifests (large blob, no manifest) stays readable and consistent", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha, value } = await storeWithBig(dir);
    await rm(fileOf(root, manifestKey(sha)));
    const back = (await ds.restore("big@1")).value as Float64Array;
    assert.equal(back[777], value[777]);
    const r = await fsck(ds.backend);
    assert.equal(r.consistent, true, JSON.stringify(r.problems));
  } finally {
    await cleanup();
  }
});

test("a manifest left behind by a blob that is gone is a removable leftover, not a problem", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds } = await storeWithBig(dir);
    const orphan = createHash("sha256").update("gone").digest("hex");
    await ds.backend.putIfAbsent(manifestKey(orphan), [
      encodeManifest({ blob: orphan, size: 1, chunkSize: CHUNK_SIZE, chunkHash: "blake3", chunks: [orphan] }),
    ]);
    const r = await fsck(ds.backend, { graceMs: 0 });
    assert.equal(r.consistent, true);
    assert.ok(r.leftovers.some((l) => l.kind === "manifest" && l.id === manifestKey(orphan) && l.removable));
  } finally {
    await cleanup();
  }
});

for (const algorithm of ["blake3", "sha256"] as const) {
  test(`ChunkHasher gives every chunk's ${algorithm} however the stream is cut`, async () => {
    const data = Buffer.alloc(3 * CHUNK_SIZE + 4321);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
    const expected: string[] = [];
    for (let off = 0; off < data.length; off += CHUNK_SIZE) expected.push(chunkHashOf(algorithm, data.subarray(off, off + CHUNK_SIZE)));
    const cuts = [[data.length], [5, CHUNK_SIZE - 5, CHUNK_SIZE, CHUNK_SIZE, 4321], [CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 4320], [1 << 20, 7 << 20, 3 << 20]];
    for (const cut of cuts) {
      const h = new ChunkHasher(CHUNK_SIZE, algorithm);
      let off = 0;
      for (const n of cut) {
        const piece = Buffer.from(data.subarray(off, Math.min(data.length, off + n)));
        h.update(piece);
        piece.fill(0); // the hasher must have taken what it needs
        off += n;
      }
      if (off < data.length) h.update(data.subarray(off));
      assert.deepEqual(await h.digests(), expected, `cut ${cut.join(",")}`);
    }
  });
}

/** Rewrites a store's manifest as an older or fallback writer would have: SHA-256 chunks, in `format`. */
async function rewriteAsSha256(root: string, sha: string, format: 1 | 2): Promise<void> {
  const stored = await readFile(fileOf(root, blobKey(sha)));
  const chunks: string[] = [];
  for (let off = 0; off < stored.length; off += CHUNK_SIZE) chunks.push(chunkHashOf("sha256", stored.subarray(off, off + CHUNK_SIZE)));
  const m = { blob: sha, size: stored.length, chunkSize: CHUNK_SIZE, chunkHash: "sha256" as const, chunks };
  let bytes = encodeManifest(m);
  if (format === 1) {
    const body = JSON.stringify({ format: 1, blob: sha, size: stored.length, chunk_size: CHUNK_SIZE, chunks });
    bytes = Buffer.from(`${body.slice(0, -1)},"check":"${createHash("sha256").update(body).digest("hex")}"}\n`);
  }
  const mfile = fileOf(root, manifestKey(sha));
  await chmod(mfile, 0o644);
  await writeFile(mfile, bytes);
}

for (const format of [1, 2] as const) {
  test(`a SHA-256 manifest (format ${format}: older stores, or a writer without BLAKE3) is read, verified and checked by fsck`, async () => {
    const { dir, cleanup } = await tmpStoreDir();
    try {
      const { ds, root, sha, value } = await storeWithBig(dir);
      await rewriteAsSha256(root, sha, format);
      const m = decodeManifest(await readFile(fileOf(root, manifestKey(sha))), sha, (await readFile(fileOf(root, blobKey(sha)))).length);
      assert.ok(!("invalid" in m) && m.chunkHash === "sha256", JSON.stringify(m));
      const back = (await ds.restore("big@1")).value as Float64Array;
      assert.equal(back[4321], value[4321]);
      assert.equal((await fsck(ds.backend)).consistent, true);
      await writeOver(fileOf(root, blobKey(sha)), CHUNK_SIZE + 5, Buffer.from([9, 9, 9]));
      await assert.rejects(
        ds.restore("big@1"),
        (e: unknown) => e instanceof CorruptArtifactError && /chunk 2 of 5/.test(e.message) && /sha256:/.test(e.message),
      );
    } finally {
      await cleanup();
    }
  });
}

test("a process where BLAKE3 can't load reads BLAKE3-manifested blobs by their whole SHA-256, refuses corruption, and writes SHA-256 manifests", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { root, sha, value } = await storeWithBig(dir);
    const script = `
      const { Datastore, prepareOutputs } = require(${JSON.stringify(join(__dirname, "..", "..", "src", "store"))});
      const { manifestKey, decodeManifest } = require(${JSON.stringify(join(__dirname, "..", "..", "src", "store", "chunk-manifest"))});
      (async () => {
        const ds = await Datastore.open(process.argv[1]);
        const out = {};
        try { out.value = (await ds.restore("big@1")).value[${value.length - 1}]; } catch (e) { out.error = e.name + ": " + e.message; }
        const rec = await ds.recordExecution({ notebook: "/nb2", cell: "c2", code: "x", preparedOutputs: prepareOutputs({ other: new Float64Array(${MANIFEST_MIN_SIZE / 8 + 99}).fill(2) }), status: "ok", started: new Date(), target: "kernel" });
        const s = rec.outputs.other.sha256;
        const { blobKey } = require(${JSON.stringify(join(__dirname, "..", "..", "src", "store", "blobs"))});
        const m = decodeManifest(await ds.backend.get(manifestKey(s)), s, (await ds.backend.stat(blobKey(s))).size);
        out.written = m.chunkHash ?? m.invalid;
        const { fsck } = require(${JSON.stringify(join(__dirname, "..", "..", "src", "store", "fsck"))});
        const f = await fsck(ds.backend);
        out.fsck = f.consistent ? "consistent" : f.problems.map((p) => p.kind).join(",");
        console.log(JSON.stringify(out));
      })();`;
    const run = () =>
      JSON.parse(
        execFileSync(process.execPath, ["-e", script, root], { env: { ...process.env, NBSCALE_NO_BLAKE3: "1" }, encoding: "utf8" })
          .trim()
          .split("\n")
          .pop() as string,
      );
    const first = run();
    assert.deepEqual(first, { value: value[value.length - 1], written: "sha256", fsck: "consistent" });
    await writeOver(fileOf(root, blobKey(sha)), 3 * CHUNK_SIZE + 1, Buffer.from([7]));
    const second = run();
    assert.match(second.error, /CorruptArtifactError: .*big@1.*hashes to sha256:/);
    assert.equal(second.fsck, "corrupt-blob", "fsck without BLAKE3 still finds the damage by the whole SHA-256");
  } finally {
    await cleanup();
  }
});

test("matches: a large value's bytes are compared with a blob through its BLAKE3 manifest; recording uses it for same-size versions", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const { ds, root, sha, value } = await storeWithBig(dir);
    const size = (await readFile(fileOf(root, blobKey(sha)))).length;
    const chunksOf = (v: Float64Array) => prepareOutputs({ big: v })[0].s.chunks;
    assert.equal(await ds.blobs.matches(sha, size, chunksOf(value)), true);
    const changed = value.slice();
    changed[changed.length - 2] = 0.25; // last chunk
    assert.equal(await ds.blobs.matches(sha, size, chunksOf(changed)), false);
    assert.equal(await ds.blobs.matches(sha, size, chunksOf(changed.subarray(1))), false, "another size");
    // Re-recording the same bytes: same version, no new blob; changed bytes of the same size: a new version, read back intact.
    const listBlobs = async () => {
      const keys: string[] = [];
      for await (const k of ds.backend.list("blobs/sha256/")) keys.push(k);
      return keys.sort();
    };
    const blobsBefore = await listBlobs();
    const rec = (v: Float64Array) => recordBig(ds, v);
    const again = await rec(value);
    assert.equal(again.outputs.big.version, 1);
    assert.equal(again.outputs.big.new_version, false);
    assert.deepEqual(await listBlobs(), blobsBefore);
    const next = await rec(changed);
    assert.equal(next.outputs.big.version, 2);
    assert.equal(
      next.outputs.big.sha256,
      createHash("sha256")
        .update(Buffer.concat(chunksOf(changed)))
        .digest("hex"),
    );
    assert.equal(((await ds.restore("big@2")).value as Float64Array)[changed.length - 2], 0.25);
    // Without a manifest the answer is "can't tell" and SHA-256 decides.
    await rm(fileOf(root, manifestKey(sha)));
    assert.equal(await ds.blobs.matches(sha, size, chunksOf(value)), null);
    assert.equal((await rec(value)).outputs.big.version, 3, "value went back to version 1's bytes: a new version of the name, sharing version 1's blob");
  } finally {
    await cleanup();
  }
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { BufferSource, deserialize, sha256Of } from "../../src/store";
import { serializeStream, serializeValue, serializeWhole, type SerializeOptions } from "../../src/store/serialize";
import { shapes } from "./chunked-shapes";

// Small cut points, so the chunked paths run on values of a few hundred KB.
const SMALL: SerializeOptions = { splitBytes: 4096, runBytes: 1024 };

function formatOf(chunks: Uint8Array[]): number {
  return Buffer.from(chunks[0]).readUInt16LE(4);
}

async function decode(chunks: Uint8Array[], resolveClass?: (n: string) => { name: string; prototype: object | null } | undefined): Promise<unknown> {
  const d = await deserialize(new BufferSource(Buffer.concat(chunks)), { resolveClass });
  assert.equal(d.kind, "v8");
  return (d as { value: unknown }).value;
}

test("big containers are written in runs (format 2) and round-trip exactly", async () => {
  for (const [name, value] of Object.entries(shapes())) {
    const s = serializeValue(value, SMALL);
    assert.equal(formatOf(s.chunks), 2, `${name} is chunked`);
    const back = await decode(s.chunks);
    assert.deepStrictEqual(back, value, name);
  }
});

test("sharing and cycles inside an item survive the chunked format", async () => {
  const v = shapes().innerSharing as Array<{ a: { self: unknown }; b: unknown }>;
  const back = (await decode(serializeValue(v, SMALL).chunks)) as typeof v;
  for (const x of back) {
    assert.equal(x.a, x.b);
    assert.equal(x.a.self, x.a);
  }
});

test("holes, -0, NaN and typed arrays keep what they were", async () => {
  const { holey, oddNumbers, views, buffers } = shapes() as Record<string, unknown[]>;
  const h = (await decode(serializeValue(holey, SMALL).chunks)) as unknown[];
  assert.equal(h.length, 6002);
  assert.ok(!(1 in h) && 6000 in h);
  const o = (await decode(serializeValue(oddNumbers, SMALL).chunks)) as number[];
  assert.ok(Object.is(o[0], -0) && Number.isNaN(o[1]));
  const v = (await decode(serializeValue(views, SMALL).chunks)) as Array<{ data: Float64Array; raw: Uint8Array }>;
  assert.ok(v[3].data instanceof Float64Array && v[3].data.buffer.byteLength === 160_000 && v[3].data[5] === 3);
  assert.ok(v[3].raw instanceof Uint8Array && v[3].raw.buffer.byteLength === 100);
  const b = (await decode(serializeValue(buffers, SMALL).chunks)) as Array<{ ab: ArrayBuffer }>;
  assert.ok(b[4].ab instanceof ArrayBuffer && new Uint8Array(b[4].ab)[69_999] === 4);
});

test("big typed arrays in runs are written from their own memory", () => {
  const { views } = shapes() as { views: Array<{ data: Float64Array }> };
  const s = serializeValue(views, SMALL);
  const own = new Set(views.map((x) => x.data.buffer));
  assert.equal(s.chunks.filter((c) => own.has(c.buffer as ArrayBuffer)).length, views.length);
});

test("a top-level class instance gets its prototype back from the resolver", async () => {
  class Model {
    constructor(
      public weights: number[][] = Array.from({ length: 10 }, () => Array.from({ length: 1000 }, () => 0.5)),
      public name = "m",
    ) {}
    size(): number {
      return this.weights.length;
    }
  }
  const s = serializeValue(new Model(), SMALL);
  assert.equal(formatOf(s.chunks), 2);
  assert.equal(s.header.class, "Model");
  const back = (await decode(s.chunks, (n) => (n === "Model" ? Model : undefined))) as Model;
  assert.ok(back instanceof Model);
  assert.equal(back.size(), 10);
});

test("equal values give equal bytes: twice, after a round trip, streamed or collected, and in another process", async () => {
  const here: Record<string, string> = {};
  for (const [name, value] of Object.entries(shapes())) {
    const a = serializeValue(value, SMALL);
    const b = serializeValue(value, SMALL);
    assert.equal(sha256Of(a.chunks).sha256, sha256Of(b.chunks).sha256, `${name} twice`);
    const again = serializeValue(await decode(a.chunks), SMALL);
    assert.equal(sha256Of(again.chunks).sha256, sha256Of(a.chunks).sha256, `${name} after a round trip`);
    const streamed = [...serializeStream(value, SMALL).chunks];
    assert.equal(sha256Of(streamed).sha256, sha256Of(a.chunks).sha256, `${name} streamed`);
    here[name] = sha256Of(a.chunks).sha256;
  }
  // A fresh process, whose optimizer and allocation sites have seen nothing: V8's elements kinds
  // (and so its bytes) there differ from a warm one's unless runs are built from values alone.
  const script = `
    const { serializeValue } = require(${JSON.stringify(path.join(__dirname, "..", "..", "src", "store", "serialize.js"))});
    const { sha256Of } = require(${JSON.stringify(path.join(__dirname, "..", "..", "src", "store", "blobs.js"))});
    const { shapes } = require(${JSON.stringify(path.join(__dirname, "chunked-shapes.js"))});
    const out = {};
    for (const [n, v] of Object.entries(shapes())) out[n] = sha256Of(serializeValue(v, ${JSON.stringify(SMALL)}).chunks).sha256;
    process.stdout.write(JSON.stringify(out));
  `;
  const there = JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })) as Record<string, string>;
  assert.deepEqual(there, here);
  // Where code generation from strings is off, the element loops run without per-array functions: same bytes.
  const plain = JSON.parse(execFileSync(process.execPath, ["--disallow-code-generation-from-strings", "-e", script], { encoding: "utf8" })) as Record<
    string,
    string
  >;
  assert.deepEqual(plain, here);
});

test("items that share an object, or reach their container, are written whole (format 1) and keep it", async () => {
  const common = { c: 1 };
  const shared = Array.from({ length: 3000 }, (_, i) => ({ i, common }));
  const s1 = serializeValue(shared, SMALL);
  assert.equal(formatOf(s1.chunks), 1);
  const b1 = (await decode(s1.chunks)) as typeof shared;
  assert.equal(b1[0].common, b1[2999].common);

  const cyclic: unknown[] = Array.from({ length: 3000 }, (_, i) => i);
  cyclic.push({ root: cyclic });
  const s2 = serializeValue(cyclic, SMALL);
  assert.equal(formatOf(s2.chunks), 1);
  const b2 = (await decode(s2.chunks)) as unknown[];
  assert.equal((b2[3000] as { root: unknown }).root, b2);

  const viewsOnOneBuffer = (() => {
    const ab = new ArrayBuffer(1 << 20);
    return Array.from({ length: 8 }, (_, i) => ({ i, v: new Uint8Array(ab, i * 131072, 131072), pad: "p".repeat(600) }));
  })();
  assert.equal(formatOf(serializeValue(viewsOnOneBuffer, SMALL).chunks), 1);
});

test("small values, and big ones that aren't plain containers, keep format 1 and its bytes", () => {
  const small = { a: [1, 2, 3], m: new Map([["x", 1]]) };
  assert.equal(formatOf(serializeValue(small, SMALL).chunks), 1);
  assert.deepEqual(Buffer.concat(serializeValue(small).chunks), Buffer.concat(serializeWhole(small).chunks));
  class Big extends Array<number> {}
  const sub = Big.from({ length: 5000 }, () => 1);
  assert.equal(formatOf(serializeValue(sub, SMALL).chunks), 1);
  const named = Object.assign(
    Array.from({ length: 5000 }, () => 1),
    { extra: "kept" },
  );
  assert.equal(formatOf(serializeValue(named, SMALL).chunks), 1);
  assert.equal(formatOf(serializeValue(new Float64Array(1 << 20)).chunks), 1);
});

test("what can't be stored deep inside a big container becomes the same stub as before", () => {
  const v = Array.from({ length: 3000 }, (_, i) => ({ i }));
  (v[1234] as Record<string, unknown>).f = () => 1;
  const s = serializeValue(v, SMALL);
  const w = serializeWhole(v, SMALL);
  assert.equal(s.header.kind, "stub");
  assert.deepEqual(s.header, w.header);
  assert.equal(s.header.path, "[1234].f");
});

test("format 1 blobs of big containers (written before format 2) still read", async () => {
  const v = shapes().groups;
  const old = serializeWhole(v);
  assert.equal(formatOf(old.chunks), 1);
  assert.deepStrictEqual(await decode(old.chunks), v);
});

test("runs are bounded and made one at a time, as the consumer takes them", () => {
  // With the default cut points: 40 arrays of 1M numbers (~360 MB of payload in one serializer).
  const v = Array.from({ length: 40 }, (_, i) => Array.from({ length: 1 << 20 }, (_, j) => i + j / 7));
  const st = serializeStream(v);
  assert.ok(st.chunked);
  let biggest = 0;
  let runs = 0;
  for (const c of st.chunks) {
    biggest = Math.max(biggest, c.byteLength);
    if (c.byteLength > 1 << 20) runs++;
  }
  assert.ok(runs >= 40, `${runs} runs`);
  assert.ok(biggest <= 16 << 20, `largest chunk ${biggest} bytes`);
});

test("a truncated or malformed chunked value is refused", async () => {
  const s = Buffer.concat(serializeValue(shapes().matrix, SMALL).chunks);
  await assert.rejects(deserialize(new BufferSource(s.subarray(0, s.length - 40))), /truncated|invalid/);
  const bad = Buffer.from(s);
  const firstRecord = Math.ceil((16 + s.readUInt32LE(8)) / 8) * 8;
  bad.writeUInt32LE(99, firstRecord);
  await assert.rejects(deserialize(new BufferSource(bad)));
});

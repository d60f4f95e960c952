import { test } from "node:test";
import assert from "node:assert/strict";
import { BufferSource, deserialize, Decoded, serializeOrThrow, serializeValue, sha256Of, toJsonForm, UnserializableValueError } from "../../src/store";
import { EventEmitter } from "node:events";
import { createServer } from "node:net";

async function roundTrip(value: unknown): Promise<Decoded> {
  const s = serializeValue(value);
  return deserialize(new BufferSource(Buffer.concat(s.chunks)));
}

function bytesOf(v: ArrayBufferView): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

test("ordinary values round-trip", async () => {
  const value = {
    n: 1.5,
    s: "héllo ✓",
    b: true,
    nil: null,
    big: 12345678901234567890n,
    d: new Date(1700000000000),
    re: /a+b/gi,
    arr: [1, "two", [3]],
    m: new Map<unknown, unknown>([
      ["k", 1],
      [2, { x: 1 }],
    ]),
    set: new Set([1, 2, 3]),
    err: new TypeError("boom"),
  };
  const d = await roundTrip(value);
  assert.equal(d.kind, "v8");
  const v = (d as Extract<Decoded, { kind: "v8" }>).value as typeof value;
  assert.deepEqual({ ...v, err: undefined }, { ...value, err: undefined });
  assert.ok(v.err instanceof Error);
  assert.equal(v.err.message, "boom");
});

test("typed arrays, Buffers and ArrayBuffers are bit-exact, keep their type, own their buffer and share it when they did", async () => {
  const f = new Float64Array(100_000);
  for (let i = 0; i < f.length; i++) f[i] = Math.random() * 1e6 - 5e5;
  const dv = new DataView(f.buffer);
  dv.setUint32(8, 0x7ff80000 | 0xdead, true); // NaN with a payload
  dv.setUint32(12, 0x7ff80000, true);
  f[2] = -0;
  f[3] = Infinity;
  const ab = new ArrayBuffer(200_000);
  new Uint8Array(ab).fill(7);
  const value = {
    f,
    alias: f,
    i8: new Int8Array([-1, 2, -3]),
    u16: new Uint16Array(50_000).fill(65535),
    bigs: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]),
    buf: Buffer.from("raw bytes"),
    bigbuf: Buffer.alloc(70_000, 3),
    ab,
    view: new Uint8Array(ab),
  };
  const s = serializeValue(value);
  // The big ones went out of band, the small ones inline.
  assert.deepEqual(
    s.header.parts.map((p) => p.role),
    ["v8", "arraybuffer", "view", "view", "view"],
  );
  const v = ((await deserialize(new BufferSource(Buffer.concat(s.chunks)))) as { value: typeof value }).value;
  assert.ok(v.f instanceof Float64Array && v.f.buffer.byteLength === f.byteLength);
  assert.ok(bytesOf(v.f).equals(bytesOf(f)), "Float64Array bytes (incl. NaN payload, -0) differ");
  assert.ok(Object.is(v.f[2], -0));
  assert.equal(v.alias, v.f, "two references to one array stay one array");
  assert.ok(v.i8 instanceof Int8Array && bytesOf(v.i8).equals(bytesOf(value.i8)));
  assert.ok(v.u16 instanceof Uint16Array && bytesOf(v.u16).equals(bytesOf(value.u16)));
  assert.deepEqual([...v.bigs], [...value.bigs]);
  assert.ok(Buffer.isBuffer(v.buf) && v.buf.toString() === "raw bytes");
  assert.ok(Buffer.isBuffer(v.bigbuf) && v.bigbuf.equals(value.bigbuf));
  assert.ok(v.ab instanceof ArrayBuffer && Buffer.from(v.ab).equals(Buffer.from(ab)));
  assert.equal(v.view.buffer, v.ab, "a view of a stored ArrayBuffer shares it again");
});

test("equal values serialize to identical bytes; a change changes the hash", () => {
  const make = () => ({ a: [1, 2, 3], m: new Map([["x", new Float64Array(20_000).fill(0.25)]]), t: "text" });
  const h1 = sha256Of(serializeValue(make()).chunks).sha256;
  const h2 = sha256Of(serializeValue(make()).chunks).sha256;
  assert.equal(h1, h2);
  const changed = make();
  (changed.m.get("x") as Float64Array)[19_999] = 0.5;
  assert.notEqual(sha256Of(serializeValue(changed).chunks).sha256, h1);
});

test("large typed arrays are written from their own memory (no copy)", () => {
  const big = new Float64Array(1 << 20);
  const s = serializeValue(big);
  const part = s.chunks.find((c) => c.byteLength === big.byteLength);
  assert.ok(part, "the array is one chunk");
  assert.equal(part.buffer, big.buffer, "the chunk is a view of the array's own buffer");
});

test("unserializable values become typed stubs with a reason, never exceptions", async () => {
  const server = createServer();
  const cases: Array<[unknown, RegExp, string | null]> = [
    [Promise.resolve(1), /Promise/, null],
    [{ a: { onEpoch: () => 1 } }, /function onEpoch/, "a.onEpoch"],
    [new WeakMap(), /WeakMap/, null],
    [server, /Server is a live Node.js object/, null],
    [new EventEmitter(), /EventEmitter/, null],
    [Symbol("s"), /symbol/, null],
    [[1, 2, new Map([["cb", Promise.resolve()]])], /Promise/, '[2].get("cb")'],
  ];
  for (const [value, reason, path] of cases) {
    const s = serializeValue(value);
    assert.equal(s.header.kind, "stub", `expected a stub for ${String(reason)}`);
    assert.match(s.header.reason ?? "", reason);
    assert.equal(s.header.path ?? null, path);
    const d = await deserialize(new BufferSource(Buffer.concat(s.chunks)));
    assert.equal(d.kind, "stub");
  }
});

test("serializeOrThrow names the variable, its type, the reason and where", () => {
  assert.throws(
    () => serializeOrThrow("model", { layers: [1], opts: { callback: function cb() {} } }),
    (e: unknown) =>
      e instanceof UnserializableValueError &&
      e.variable === "model" &&
      e.type === "Object" &&
      e.path === "opts.callback" &&
      /`model` \(Object\) can't be serialized: function cb/.test(e.message),
  );
});

test("functions and classes are versioned as source text", async () => {
  function add(a: number, b: number): number {
    return a + b;
  }
  class Model {
    w = 1;
  }
  const d1 = await roundTrip(add);
  assert.equal(d1.kind, "source");
  assert.match((d1 as { source: string }).source, /return a \+ b/);
  assert.equal(d1.type, "function add");
  const d2 = await roundTrip(Model);
  assert.equal(d2.kind, "source");
  assert.equal(d2.type, "class Model");
  assert.equal(serializeValue(Math.max).header.kind, "stub", "native functions have no source");
});

test("class instances record their class and get the prototype back when the class is known", async () => {
  class Point {
    constructor(
      public x: number,
      public y: number,
    ) {}
    norm(): number {
      return Math.hypot(this.x, this.y);
    }
  }
  const s = serializeValue(new Point(3, 4));
  assert.equal(s.header.class, "Point");
  const d = await deserialize(new BufferSource(Buffer.concat(s.chunks)), { resolveClass: (n) => (n === "Point" ? Point : undefined) });
  assert.equal((d as { value: Point }).value.norm(), 5);
});

test("JSON form: plain data as JSON, small typed arrays as numbers, large ones left out with a note", async () => {
  const d = await roundTrip({
    a: [1, "x", null],
    t: new Int32Array([1, 2, 3]),
    big: new Float64Array(200_000),
    m: new Map([["k", 1]]),
    s: new Set([1]),
    n: NaN,
    b: 5n,
    dt: new Date(0),
  });
  const j = toJsonForm(d);
  assert.deepEqual(j.value, { a: [1, "x", null], t: [1, 2, 3], big: null, m: { k: 1 }, s: [1], n: "NaN", b: "5", dt: "1970-01-01T00:00:00.000Z" });
  assert.ok(j.notes.some((n) => /value\.big: Float64Array\(200000\) left out/.test(n)));
  JSON.parse(JSON.stringify(j.value));
  const stub = toJsonForm(await roundTrip(Promise.resolve()));
  assert.equal(stub.value, null);
  assert.match(stub.notes[0], /not stored/);
});

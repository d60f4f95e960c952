import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeMessage, encodeMessage, newSessionKey } from "../../src/worker/wire";
import { decodeValues, encodeValues } from "../../src/worker/codec";
import { UnserializableValueError } from "../../src/store/errors";

test("messages verify with the session key only; tampering or re-framing is refused", () => {
  const key = newSessionKey();
  const frames = [Buffer.from("abc"), Buffer.from("def")];
  const parts = encodeMessage(key, { header: { type: "task", n: 1 }, frames });
  const ok = decodeMessage(key, parts);
  assert.deepEqual(ok?.header, { type: "task", n: 1 });
  assert.equal(decodeMessage(newSessionKey(), parts), null, "another session's key");
  const tampered = [...parts];
  tampered[3] = Buffer.from("deF");
  assert.equal(decodeMessage(key, tampered), null, "a changed frame");
  const reframed = [parts[0], parts[1], Buffer.from("abcd"), Buffer.from("ef")];
  assert.equal(decodeMessage(key, reframed), null, "bytes moved between frames");
  assert.equal(decodeMessage(key, [Buffer.alloc(32), parts[1]]), null, "a forged signature");
  assert.equal(decodeMessage(key, [parts[1]]), null, "no signature at all");
});

test("large typed arrays travel as frames that are their own memory (no copy), and come back equal", async () => {
  const big = new Float64Array(1 << 20).map((_, i) => i * 0.5);
  const small = { a: 1, s: "x", m: new Map([[1, "one"]]), d: new Date(0) };
  const enc = encodeValues([["big", big], ["small", small]], true);
  assert.equal(enc.specs.length, 2);
  const own = enc.frames.filter((f) => f.buffer === big.buffer);
  assert.equal(own.length, 1, "the array's memory is one frame, not a copy");
  assert.equal(own[0].byteLength, big.byteLength);
  const back = await decodeValues(enc.specs, enc.frames);
  assert.deepEqual(back.get("big"), big);
  assert.deepEqual(back.get("small"), small);
});

test("inputs that can't travel are refused naming the variable; outputs become stubs", () => {
  const { EventEmitter } = require("node:events") as typeof import("node:events");
  assert.throws(() => encodeValues([["emitter", new EventEmitter()]], true), (e: unknown) => {
    assert.ok(e instanceof UnserializableValueError);
    assert.match((e as Error).message, /`emitter` \(EventEmitter\)/);
    return true;
  });
  const lenient = encodeValues([["p", Promise.resolve(1)]], false);
  assert.deepEqual(lenient.stubs.map((s) => [s.name, s.type]), [["p", "Promise"]]);
});

test("function values travel as source and are recreated", async () => {
  const enc = encodeValues([["f", (x: number) => x * 3]], true);
  const back = await decodeValues(enc.specs, enc.frames);
  assert.equal((back.get("f") as (x: number) => number)(2), 6);
});

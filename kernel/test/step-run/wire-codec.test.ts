import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { LARGE_FRAME, newSessionKey, WireChannel } from "../../src/worker/wire";
import { decodeValues, encodeValues } from "../../src/worker/codec";
import { UnserializableValueError } from "../../src/store/errors";

test("messages verify with the session key only; tampering, re-framing and replays are refused", () => {
  const key = newSessionKey();
  const send = new WireChannel(key);
  const frames = [Buffer.from("abc"), Buffer.from("def")];
  const parts = send.encode({ header: { type: "task", n: 1 }, frames });
  assert.equal(new WireChannel(newSessionKey()).decode(parts), null, "another session's key");
  const tampered = [...parts];
  tampered[4] = Buffer.from("deF");
  assert.equal(new WireChannel(key).decode(tampered), null, "a changed frame");
  const reframed = [parts[0], parts[1], parts[2], Buffer.from("abcd"), Buffer.from("ef")];
  assert.equal(new WireChannel(key).decode(reframed), null, "bytes moved between frames");
  const forgedSeq = [parts[0], Buffer.alloc(8, 7), ...parts.slice(2)];
  assert.equal(new WireChannel(key).decode(forgedSeq), null, "a changed sequence number");
  assert.equal(new WireChannel(key).decode([Buffer.alloc(32), ...parts.slice(1)]), null, "a forged signature");
  assert.equal(new WireChannel(key).decode(parts.slice(1)), null, "no signature at all");
  const receive = new WireChannel(key);
  assert.deepEqual(receive.decode(parts)?.header, { type: "task", n: 1 });
  assert.equal(receive.decode(parts), null, "the same message again (replay)");
  const next = send.encode({ header: { type: "task", n: 2 }, frames: [] });
  assert.deepEqual(receive.decode(next)?.header, { type: "task", n: 2 });
});

test("large frames are length-checked, not hashed", () => {
  const key = newSessionKey();
  const big = Buffer.alloc(LARGE_FRAME, 1);
  const parts = new WireChannel(key).encode({ header: { type: "done" }, frames: [big] });
  const shorter = [...parts.slice(0, 3), big.subarray(1)];
  assert.equal(new WireChannel(key).decode(shorter), null, "a frame of another length");
  assert.ok(new WireChannel(key).decode(parts));
});

test("large typed arrays travel as frames that are their own memory (no copy), and come back equal", async () => {
  const big = new Float64Array(1 << 20).map((_, i) => i * 0.5);
  const small = { a: 1, s: "x", m: new Map([[1, "one"]]), d: new Date(0) };
  const enc = encodeValues(
    [
      ["big", big],
      ["small", small],
    ],
    true,
  );
  assert.equal(enc.specs.length, 2);
  const own = enc.frames.filter((f) => f.buffer === big.buffer);
  assert.equal(own.length, 1, "the array's memory is one frame, not a copy");
  assert.equal(own[0].byteLength, big.byteLength);
  const back = await decodeValues(enc.specs, enc.frames);
  assert.deepEqual(back.get("big"), big);
  assert.deepEqual(back.get("small"), small);
});

test("inputs that can't travel are refused naming the variable; outputs become stubs", () => {
  assert.throws(
    () => encodeValues([["emitter", new EventEmitter()]], true),
    (e: unknown) => {
      assert.ok(e instanceof UnserializableValueError);
      assert.match((e as Error).message, /`emitter` \(EventEmitter\)/);
      return true;
    },
  );
  const lenient = encodeValues([["p", Promise.resolve(1)]], false);
  assert.deepEqual(
    lenient.stubs.map((s) => [s.name, s.type]),
    [["p", "Promise"]],
  );
});

test("function values travel as source and are recreated", async () => {
  const enc = encodeValues([["f", (x: number) => x * 3]], true);
  const back = await decodeValues(enc.specs, enc.frames);
  assert.equal((back.get("f") as (x: number) => number)(2), 6);
});

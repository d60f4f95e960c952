import { test } from "node:test";
import assert from "node:assert/strict";
// The module object itself (not an import-star copy), so a mock of a method is what wire.ts calls.
import crypto = require("node:crypto");
import { createHmac } from "node:crypto";
import { decode, encode, Signer, WireError } from "../../src/protocol/wire";
import { newHeader } from "../../src/protocol/message";

const KEY = "3b0f7e5c-secret";
const realTimingSafeEqual = crypto.timingSafeEqual;

function frames(signer: Signer) {
  return encode(
    {
      identities: [Buffer.from("client-1")],
      header: newHeader("execute_request", "s1"),
      parent_header: {},
      metadata: { cellId: "abc" },
      content: { code: "1 + 1" },
      buffers: [Buffer.from([1, 2, 3])],
    },
    signer,
  );
}

test("a signed message round-trips with identities and buffers", () => {
  const signer = new Signer(KEY, "hmac-sha256");
  const msg = decode(frames(signer), signer);
  assert.deepEqual(msg.identities, [Buffer.from("client-1")]);
  assert.equal(msg.header.msg_type, "execute_request");
  assert.deepEqual(msg.content, { code: "1 + 1" });
  assert.deepEqual(msg.metadata, { cellId: "abc" });
  assert.deepEqual(msg.buffers, [Buffer.from([1, 2, 3])]);
});

test("the signature is HMAC over header, parent, metadata and content", () => {
  const signer = new Signer(KEY, "hmac-sha256");
  const f = frames(signer);
  const at = f.findIndex((x) => x.toString() === "<IDS|MSG>");
  const h = createHmac("sha256", KEY);
  for (const part of f.slice(at + 2, at + 6)) h.update(part);
  assert.equal(f[at + 1].toString(), h.digest("hex"));
});

test("a forged signature, a wrong key or a tampered body is refused", () => {
  const signer = new Signer(KEY, "hmac-sha256");
  const f = frames(signer);
  const at = f.findIndex((x) => x.toString() === "<IDS|MSG>");
  const forged = [...f];
  forged[at + 1] = Buffer.from("0".repeat(64));
  assert.throws(() => decode(forged, signer), WireError);
  assert.throws(() => decode(frames(new Signer("other", "hmac-sha256")), signer), /bad HMAC/);
  const tampered = [...f];
  tampered[at + 5] = Buffer.from(JSON.stringify({ code: "evil()" }));
  assert.throws(() => decode(tampered, signer), /bad HMAC/);
  const short = [...f];
  short[at + 1] = Buffer.from("abc");
  assert.throws(() => decode(short, signer), /bad HMAC/);
});

test("malformed frames are refused with a reason", () => {
  const signer = new Signer("", "hmac-sha256");
  assert.throws(() => decode([Buffer.from("no delimiter")], signer), /delimiter/);
  assert.throws(() => decode([Buffer.from("<IDS|MSG>"), Buffer.from("")], signer), /expected 5 frames/);
  const bad = [Buffer.from("<IDS|MSG>"), Buffer.from(""), Buffer.from("{"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")];
  assert.throws(() => decode(bad, signer), /invalid JSON/);
  const noType = [Buffer.from("<IDS|MSG>"), Buffer.from(""), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}")];
  assert.throws(() => decode(noType, signer), /msg_id\/msg_type/);
});

test("an unknown signature scheme fails at start-up, naming it", () => {
  assert.throws(() => new Signer("k", "rsa-sha1"), /unsupported signature_scheme "rsa-sha1"/);
  assert.throws(() => new Signer("k", "hmac-nosuchdigest"));
  assert.ok(new Signer("k", "hmac-sha512").verify(Buffer.from(new Signer("k", "hmac-sha512").sign([Buffer.from("x")])), [Buffer.from("x")]));
});

test("signatures are compared with crypto.timingSafeEqual, and a length mismatch is refused without throwing", (t) => {
  const calls: [Buffer, Buffer][] = [];
  t.mock.method(crypto, "timingSafeEqual", (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    calls.push([Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)]);
    return realTimingSafeEqual(a, b);
  });
  const signer = new Signer(KEY, "hmac-sha256");
  const body = [Buffer.from("{}"), Buffer.from("{}"), Buffer.from("{}"), Buffer.from('{"code":"1"}')];
  const good = Buffer.from(signer.sign(body));

  assert.equal(signer.verify(good, body), true);
  assert.equal(calls.length, 1, "a signature of the right length is compared in constant time");
  assert.deepEqual(calls[0], [good, good]);

  // Same length, one character off (first and last): compared the same way, refused.
  for (const at of [0, good.length - 1]) {
    const off = Buffer.from(good);
    off[at] = off[at] === 0x30 ? 0x31 : 0x30;
    assert.equal(signer.verify(off, body), false);
  }
  assert.equal(calls.length, 3);

  // Other lengths — empty, a prefix of the right signature, the right one with more after it,
  // the raw (binary) digest — are refused before any comparison (timingSafeEqual would throw).
  const raw = createHmac("sha256", KEY);
  for (const p of body) raw.update(p);
  for (const sig of [Buffer.alloc(0), good.subarray(0, 63), Buffer.concat([good, Buffer.from("0")]), raw.digest()]) {
    assert.doesNotThrow(() => assert.equal(signer.verify(sig, body), false));
  }
  assert.equal(calls.length, 3);
  // ...and decode refuses such a message as a bad signature, not with a crash.
  const f = frames(signer);
  const at = f.findIndex((x) => x.toString() === "<IDS|MSG>");
  f[at + 1] = Buffer.concat([f[at + 1], Buffer.from("00")]);
  assert.throws(() => decode(f, signer), /bad HMAC/);
});

test("with signing disabled (empty key) nothing is compared and messages are unsigned", (t) => {
  const spy = t.mock.method(crypto, "timingSafeEqual");
  const signer = new Signer("", "hmac-sha256");
  assert.equal(signer.sign([Buffer.from("x")]), "");
  assert.equal(signer.verify(Buffer.from("anything"), [Buffer.from("x")]), true);
  assert.equal(spy.mock.callCount(), 0);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { decode, encode, Signer, WireError } from "../../src/protocol/wire";
import { newHeader } from "../../src/protocol/message";

const KEY = "3b0f7e5c-secret";

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

import { createHmac, timingSafeEqual } from "node:crypto";
import type { JsonObject, JupyterMessage, MessageHeader } from "./message";

const DELIMITER = Buffer.from("<IDS|MSG>");

/** Why a multipart message was refused; the io thread logs it and drops the frames. */
export class WireError extends Error {}

/**
 * Signs and verifies messages with the connection file's key and scheme.
 * An empty key disables signing, as the protocol specifies.
 */
export class Signer {
  private readonly algorithm: string | null;

  constructor(
    private readonly key: string,
    scheme: string,
  ) {
    if (!key) {
      this.algorithm = null;
      return;
    }
    const m = /^hmac-(.+)$/.exec(scheme);
    if (!m) throw new Error(`unsupported signature_scheme "${scheme}" (expected hmac-<digest>)`);
    this.algorithm = m[1];
    // Fail at start-up rather than on the first message if node lacks the digest.
    createHmac(this.algorithm, key);
  }

  sign(parts: Buffer[]): string {
    if (!this.algorithm) return "";
    const h = createHmac(this.algorithm, this.key);
    for (const p of parts) h.update(p);
    return h.digest("hex");
  }

  /** Constant-time comparison: the reference kernels leak timing here, we don't. */
  verify(signature: Buffer, parts: Buffer[]): boolean {
    if (!this.algorithm) return true;
    const expected = Buffer.from(this.sign(parts), "utf8");
    if (signature.length !== expected.length) return false;
    return timingSafeEqual(signature, expected);
  }
}

export function decode(frames: Buffer[], signer: Signer): JupyterMessage {
  const at = frames.findIndex((f) => f.equals(DELIMITER));
  if (at < 0) throw new WireError("no <IDS|MSG> delimiter");
  if (frames.length < at + 6) throw new WireError(`expected 5 frames after the delimiter, got ${frames.length - at - 1}`);
  const signature = frames[at + 1];
  const body = frames.slice(at + 2, at + 6);
  if (!signer.verify(signature, body)) {
    throw new WireError(signature.length === 0 ? "no HMAC signature (an unsigned message)" : "bad HMAC signature");
  }
  let parsed: unknown[];
  try {
    parsed = body.map((b) => JSON.parse(b.toString("utf8")));
  } catch (e) {
    throw new WireError(`invalid JSON: ${(e as Error).message}`);
  }
  const [header, parent, metadata, content] = parsed as [MessageHeader, MessageHeader, JsonObject, JsonObject];
  if (!header || typeof header.msg_type !== "string" || typeof header.msg_id !== "string") {
    throw new WireError("header lacks msg_id/msg_type");
  }
  return {
    identities: frames.slice(0, at),
    header,
    parent_header: parent ?? {},
    metadata: metadata ?? {},
    content: content ?? {},
    buffers: frames.slice(at + 6),
  };
}

export interface OutgoingMessage {
  identities?: Buffer[];
  header: MessageHeader;
  parent_header: Partial<MessageHeader>;
  metadata: JsonObject;
  content: unknown;
  buffers?: Buffer[];
}

export function encode(msg: OutgoingMessage, signer: Signer): Buffer[] {
  const body = [msg.header, msg.parent_header, msg.metadata, msg.content].map((x) => Buffer.from(JSON.stringify(x ?? {}), "utf8"));
  return [...(msg.identities ?? []), DELIMITER, Buffer.from(signer.sign(body), "utf8"), ...body, ...(msg.buffers ?? [])];
}

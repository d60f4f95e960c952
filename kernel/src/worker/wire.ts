/**
 * Kernel ⇄ worker messages on zeromq: `[signature, header JSON, ...frames]`.
 *
 * Every message carries an HMAC-SHA256 over its header and frames with a key
 * made per kernel session and handed to workers on their stdin (never argv or
 * the environment, which other local users can read). Unsigned or badly
 * signed messages are dropped by the receiver. Frames hold serialized values,
 * one frame per chunk, so big typed arrays travel as their own frames and are
 * never copied into one message buffer.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export interface WireMessage<H = WireHeader> {
  header: H;
  frames: Uint8Array[];
}

/** What every header has; the rest depends on `type` (see worker/events.ts). */
export interface WireHeader {
  type: string;
  [key: string]: unknown;
}

export function newSessionKey(): Buffer {
  return randomBytes(32);
}

function sign(key: Uint8Array, header: Uint8Array, frames: readonly Uint8Array[]): Buffer {
  const h = createHmac("sha256", key);
  // Length-prefixed, so moving bytes between frames changes the signature.
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.byteLength));
  h.update(len).update(header);
  for (const f of frames) {
    len.writeBigUInt64LE(BigInt(f.byteLength));
    h.update(len).update(f);
  }
  return h.digest();
}

export function encodeMessage(key: Uint8Array, msg: WireMessage): Uint8Array[] {
  const header = Buffer.from(JSON.stringify(msg.header), "utf8");
  return [sign(key, header, msg.frames), header, ...msg.frames];
}

/** Null when the message is malformed or its signature is wrong. */
export function decodeMessage(key: Uint8Array, parts: readonly Uint8Array[]): WireMessage | null {
  if (parts.length < 2) return null;
  const [sig, header, ...frames] = parts;
  const expected = sign(key, header, frames);
  if (sig.byteLength !== expected.byteLength || !timingSafeEqual(sig, expected)) return null;
  try {
    const parsed = JSON.parse(Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString("utf8")) as WireHeader;
    if (!parsed || typeof parsed.type !== "string") return null;
    return { header: parsed, frames };
  } catch {
    return null;
  }
}

/**
 * zeromq.js allows one pending send per socket; this queues the rest so
 * callers can fire and forget in order.
 */
export class SendQueue {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly send: (parts: Uint8Array[]) => Promise<void>) {}
  push(parts: Uint8Array[]): Promise<void> {
    const next = this.tail.then(() => this.send(parts));
    this.tail = next.catch(() => undefined);
    return next;
  }
}

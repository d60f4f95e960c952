/**
 * Kernel ⇄ worker messages on zeromq: `[signature, sequence, header JSON, ...frames]`.
 *
 * Every message is signed (HMAC-SHA256) with a key made per kernel session
 * and handed to workers on their stdin (never argv or the environment,
 * which other local users can read), and carries a sequence number that
 * must grow, so a captured message can't be replayed. Messages that fail
 * either check are dropped by the receiver.
 *
 * The signature covers the sequence, the header, every frame's length and
 * the bytes of frames under LARGE_FRAME. Bigger frames (the memory of large
 * typed arrays) are not hashed: hashing runs at ~1.1 GB/s here and would
 * cost four passes over every big value per round trip. That is safe
 * because zeromq delivers a multipart message whole and from one
 * connection: a peer without the key can't get a signed header accepted,
 * so it can't attach frames to one, and the IPC socket lives in a 0700
 * directory, so nobody else can sit between kernel and worker.
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

export const LARGE_FRAME = 1 << 20;

export function newSessionKey(): Buffer {
  return randomBytes(32);
}

function sign(key: Uint8Array, seq: Uint8Array, header: Uint8Array, frames: readonly Uint8Array[]): Buffer {
  const h = createHmac("sha256", key);
  // Length-prefixed, so moving bytes between frames changes the signature.
  const len = Buffer.alloc(8);
  h.update(seq);
  len.writeBigUInt64LE(BigInt(header.byteLength));
  h.update(len).update(header);
  for (const f of frames) {
    len.writeBigUInt64LE(BigInt(f.byteLength));
    h.update(len);
    if (f.byteLength < LARGE_FRAME) h.update(f);
  }
  return h.digest();
}

/** One end of a kernel ⇄ worker conversation: signs what it sends, checks what it gets. */
export class WireChannel {
  private sent = 0n;
  private received = 0n;
  constructor(private readonly key: Uint8Array) {}

  encode(msg: WireMessage): Uint8Array[] {
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64LE(++this.sent);
    const header = Buffer.from(JSON.stringify(msg.header), "utf8");
    return [sign(this.key, seq, header, msg.frames), seq, header, ...msg.frames];
  }

  /** Null when the message is malformed, badly signed, or not newer than the last one accepted. */
  decode(parts: readonly Uint8Array[]): WireMessage | null {
    if (parts.length < 3) return null;
    const [sig, seq, header, ...frames] = parts;
    if (seq.byteLength !== 8) return null;
    const expected = sign(this.key, seq, header, frames);
    if (sig.byteLength !== expected.byteLength || !timingSafeEqual(sig, expected)) return null;
    const n = Buffer.from(seq.buffer, seq.byteOffset, 8).readBigUInt64LE();
    if (n <= this.received) return null;
    try {
      const parsed = JSON.parse(Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString("utf8")) as WireHeader;
      if (!parsed || typeof parsed.type !== "string") return null;
      this.received = n;
      return { header: parsed, frames };
    } catch {
      return null;
    }
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

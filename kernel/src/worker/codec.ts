/**
 * Values ⇄ message frames, on the datastore's serializer: typed arrays over
 * the out-of-band threshold become frames of their own that point into the
 * value's memory (no structured-clone copy), small chunks are merged so a
 * message doesn't carry dozens of 8-byte frames.
 */
import {
  deserialize,
  serializeOrThrow,
  serializeValue,
  DEFAULT_OOB_THRESHOLD,
  type ByteSource,
  type Decoded,
  type Serialized,
  type ClassResolver,
} from "../store/serialize";
import { readSync } from "node:fs";
import type { OutputStub, ValueSpec } from "./events";
import type { Piece } from "./spill";

export interface EncodedValues {
  specs: ValueSpec[];
  frames: Uint8Array[];
  stubs: OutputStub[];
  bytes: number;
}

/**
 * `strict`: refuse what can't be serialized (inputs, checked before
 * dispatch) with an error naming the variable; otherwise report it as a stub.
 * A value may come already serialized (third element), so it isn't done twice.
 */
export function encodeValues(values: ReadonlyArray<readonly [string, unknown, Serialized?]>, strict: boolean): EncodedValues {
  const out: EncodedValues = { specs: [], frames: [], stubs: [], bytes: 0 };
  for (const [name, value, done] of values) {
    const s = done ?? (strict ? serializeOrThrow(name, value) : serializeValue(value));
    if (s.header.kind === "stub") {
      out.stubs.push({ name, type: s.header.type, reason: s.header.reason ?? "unknown" });
      continue;
    }
    const frames = mergeSmall(s.chunks);
    out.specs.push({ name, type: s.header.type, frames: frames.length });
    out.frames.push(...frames);
    out.bytes += s.size;
  }
  return out;
}

function mergeSmall(chunks: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pending: Uint8Array[] = [];
  const flush = () => {
    if (pending.length === 1) out.push(pending[0]);
    else if (pending.length > 1) out.push(Buffer.concat(pending));
    pending = [];
  };
  for (const c of chunks) {
    if (c.byteLength >= DEFAULT_OOB_THRESHOLD) {
      flush();
      out.push(c);
    } else pending.push(c);
  }
  flush();
  return out;
}

/** Reads across a list of frames (in memory or spilled to files) as one byte stream. */
export class FramesSource implements ByteSource {
  private index = 0;
  private offset = 0;
  private left: number;
  constructor(private readonly pieces: readonly Piece[]) {
    this.left = pieces.reduce((n, p) => n + (p instanceof Uint8Array ? p.byteLength : p.length), 0);
  }
  get remaining(): number {
    return this.left;
  }
  async read(target: Uint8Array): Promise<void> {
    if (target.byteLength > this.left) throw new Error("value frames are truncated");
    let filled = 0;
    while (filled < target.byteLength) {
      const p = this.pieces[this.index];
      const size = p instanceof Uint8Array ? p.byteLength : p.length;
      const n = Math.min(size - this.offset, target.byteLength - filled);
      if (p instanceof Uint8Array) target.set(p.subarray(this.offset, this.offset + n), filled);
      else {
        let got = 0;
        while (got < n) {
          const r = readSync(p.fd, target, filled + got, n - got, this.offset + got);
          if (r === 0) throw new Error("a spilled value file is truncated");
          got += r;
        }
      }
      filled += n;
      this.offset += n;
      if (this.offset === size) {
        this.index++;
        this.offset = 0;
      }
    }
    this.left -= filled;
  }
}

/**
 * Decodes the values of a message. Functions shipped as source are
 * recreated (without whatever they closed over, which never travels).
 */
export async function decodeValues(specs: readonly ValueSpec[], pieces: readonly Piece[], resolveClass?: ClassResolver): Promise<Map<string, unknown>> {
  const values = new Map<string, unknown>();
  let at = 0;
  for (const spec of specs) {
    const mine = pieces.slice(at, at + spec.frames);
    at += spec.frames;
    const decoded = await deserialize(new FramesSource(mine), { resolveClass });
    values.set(spec.name, materialize(spec.name, decoded));
  }
  return values;
}

function materialize(name: string, d: Decoded): unknown {
  if (d.kind === "v8") return d.value;
  if (d.kind === "source") {
    // A function value (`const f = (x) => …`): its source is the value.
    return (0, eval)(`(${d.source})`);
  }
  throw new Error(`\`${name}\` (${d.type}) can't be recreated: ${d.reason}`);
}

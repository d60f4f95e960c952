/**
 * The worker's half of lazy values (step/lazy.ts has the kernel's):
 * - outputs whose serialized size is over the kernel's limit are written to
 *   the datastore here and only their reference goes back, so the kernel
 *   never holds their bytes;
 * - inputs the kernel sent as references are read from the datastore here
 *   (hash-verified), so the kernel never reads them either.
 *
 * Big containers (the serializer's format 2) are never serialized into
 * memory whole: their stream goes straight into the datastore, or into a
 * spill file the kernel reads, one run at a time. That keeps what shipping
 * costs the worker to about one run over the value itself.
 */
import {
  DEFAULT_OOB_THRESHOLD,
  serializeStream,
  serializeValue,
  serializeWhole,
  type Serialized,
  type ClassResolver,
  type SerializedStream,
} from "../store/serialize";
import { estimateAtLeast } from "../store/items";
import { openStore, readStoredValue } from "../client/lazy";
import type { LazyOutputs, ValueSpec } from "./events";
import { spillStream } from "./spill";

/** A big output already in a spill file: it travels as that file. */
export interface SpilledOutput {
  name: string;
  type: string;
  file: string;
  length: number;
}

/** The serializer failed part-way through a stream (not the datastore or the disk). */
class StreamFailed extends Error {}

function* guarded(chunks: Iterable<Uint8Array>): Generator<Uint8Array> {
  try {
    yield* chunks;
  } catch (e) {
    throw new StreamFailed(e instanceof Error ? e.message : String(e));
  }
}

/**
 * The stream of `value`, first the one already made, then (a backend that
 * hashes before it writes asks twice) a fresh one: the serializer gives the
 * same bytes every time.
 */
function streams(value: unknown, first: SerializedStream): () => Iterable<Uint8Array> {
  let made: Iterable<Uint8Array> | null = first.chunks;
  return () => {
    const c = made ?? serializeStream(value).chunks;
    made = null;
    return guarded(c);
  };
}

/**
 * Stores the outputs too big to send back. Returns the others (to encode as
 * usual, with the serialization already made), big ones already streamed
 * into a spill file, and a spec (no frames) for each stored one. If the
 * datastore can't take a value (full disk, no access), it is sent back as
 * usual with a warning on the cell's stderr: slower and heavier for the
 * kernel, but the step's result is not lost.
 */
export async function storeLazyOutputs(
  outputs: Record<string, unknown>,
  lazy: LazyOutputs | undefined,
  spillDir?: string,
): Promise<{ rest: Array<[string, unknown, Serialized?]>; specs: ValueSpec[]; spilled: SpilledOutput[] }> {
  const rest: Array<[string, unknown, Serialized?]> = [];
  const specs: ValueSpec[] = [];
  const spilled: SpilledOutput[] = [];
  const warn = (name: string, e: unknown) =>
    process.stderr.write(
      `warning: \`${name}\` could not be kept in the datastore at ${lazy?.store.path} (${(e as Error).message}); it is sent to the kernel instead\n`,
    );
  const keep = async (name: string, header: Serialized["header"], write: () => Promise<{ sha256: string; size: number }>): Promise<boolean> => {
    if (!lazy || header.kind === "stub") return false;
    const kind = header.kind;
    try {
      const put = await write();
      specs.push({
        name,
        type: header.type,
        frames: 0,
        lazy: { store: lazy.store, sha256: put.sha256, size: put.size, kind, ...(header.class ? { class: header.class } : {}) },
      });
      return true;
    } catch (e) {
      if (e instanceof StreamFailed) throw e;
      warn(name, e);
      return false;
    }
  };
  for (const [name, value] of Object.entries(outputs)) {
    if (typeof value === "function") {
      rest.push([name, value]);
      continue;
    }
    const st = serializeStream(value);
    try {
      if (st.chunked && (await shipStream(name, value, st))) continue;
    } catch (e) {
      if (!(e instanceof StreamFailed)) throw e;
      // What V8 refused deep inside an item: the whole serializer names it (a stub), as everywhere.
      rest.push([name, value, serializeWhole(value)]);
      continue;
    }
    // Serializing makes views into the value's memory, not copies; the result is reused to send it.
    const s: Serialized = st.chunked ? serializeValue(value) : { header: st.header, chunks: st.chunks as Uint8Array[], size: st.size as number };
    if (s.header.kind === "stub" || !lazy || s.size <= lazy.minBytes) {
      rest.push([name, value, s]);
      continue;
    }
    if (!(await keep(name, s.header, async () => (await openStore(lazy.store, true)).blobs.putUnhashed(s.chunks)))) rest.push([name, value, s]);
  }
  return { rest, specs, spilled };

  /** A big container: into the datastore, or into a spill file; false: neither took it. */
  async function shipStream(name: string, value: unknown, st: SerializedStream): Promise<boolean> {
    const toStore = async () => (await openStore((lazy as LazyOutputs).store, true)).blobs.putStream(streams(value, st));
    // Where it goes is decided before the first byte: a guess that counts an object shared inside an
    // item once per reference (counting once would hold a set of up to minBytes / 8 objects).
    if (lazy && (!spillDir || estimateAtLeast(value, lazy.minBytes + 1, DEFAULT_OOB_THRESHOLD, false) > lazy.minBytes)) {
      if (await keep(name, st.header, toStore)) return true;
      if (!spillDir) return false;
      st = serializeStream(value); // the first stream went (partly) to the datastore
    }
    if (!spillDir) return false;
    const file = spillStream(guarded(st.chunks), spillDir, lazy ? lazy.minBytes : Infinity);
    if (file) {
      spilled.push({ name, type: st.header.type, ...file });
      return true;
    }
    // Bigger than the estimate said: the datastore after all, from a fresh stream.
    const again = serializeStream(value);
    return keep(name, again.header, async () => (await openStore((lazy as LazyOutputs).store, true)).blobs.putStream(streams(value, again)));
  }
}

/** Inputs sent as references, read from the datastore (hash-verified). */
export async function readLazyInputs(specs: readonly ValueSpec[], resolveClass: ClassResolver): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (const s of specs) {
    if (!s.lazy) continue;
    out.set(s.name, await readStoredValue(s.lazy.store, s.lazy.sha256, `${s.name} (sha256:${s.lazy.sha256.slice(0, 12)})`, resolveClass));
  }
  return out;
}

/** Frame-carrying specs only (lazy ones have no frames). */
export function eagerSpecs(specs: readonly ValueSpec[]): ValueSpec[] {
  return specs.filter((s) => !s.lazy);
}

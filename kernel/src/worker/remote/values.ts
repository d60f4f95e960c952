/**
 * Values ⇄ blobs for remote tasks. A value's frames (worker/codec.ts) are its
 * serialized bytes in order, so one value is one blob whose SHA-256 is the
 * artifact hash the history records: an input the kernel already recorded,
 * or one sent before, costs a stat and no upload.
 */
import { resolve } from "node:path";
import type { StorageBackend } from "../../store/backend";
import type { DatastoreLocation } from "../../store/location";
import { BlobStore } from "../../store/blobs";
import { encodeValues, type EncodedValues } from "../codec";
import type { OutputStub, ValueSpec } from "../events";
import { serializeStream, serializeWhole, type Serialized } from "../../store/serialize";
import type { ValueRef } from "./protocol";

export interface StoredValues {
  refs: ValueRef[];
  /** Bytes actually written (the rest were in the store already). */
  uploaded: number;
}

/** A `Lazy` input that lives in a datastore the job does not read. */
export class UnreachableLazyInput extends Error {
  constructor(
    readonly input: string,
    /** Where the value is. */
    readonly store: string,
    /** Where the job reads its inputs. */
    readonly datastore: string,
    readonly missing = false,
  ) {
    super(
      missing
        ? `\`${input}\` (a Lazy value) is not in the datastore ${store} any more`
        : `\`${input}\` (a Lazy value) stays in the datastore ${store}, and the job reads its inputs from ${datastore}`,
    );
    this.name = "UnreachableLazyInput";
  }
}

/** Whether a lazy value's datastore is the one `backend` reads (the job's, as the kernel sees it). */
export function sameDatastore(store: DatastoreLocation, backend: StorageBackend): boolean {
  return store.kind === "s3" ? store.path === backend.location : resolve(store.path) === resolve(backend.location);
}

/** Throws UnreachableLazyInput for the first Lazy input the job reading `backend` can't read. */
export async function checkLazyInputs(backend: StorageBackend, specs: readonly ValueSpec[]): Promise<void> {
  const blobs = new BlobStore(backend);
  for (const spec of specs) {
    if (!spec.lazy) continue;
    if (!sameDatastore(spec.lazy.store, backend)) throw new UnreachableLazyInput(spec.name, spec.lazy.store.path, backend.location);
    if (!(await blobs.has(spec.lazy.sha256))) throw new UnreachableLazyInput(spec.name, spec.lazy.store.path, backend.location, true);
  }
}

/**
 * Writes each value of `enc` as one blob (its frames are never concatenated).
 * A `Lazy` input (a spec with `lazy` and no frames) is a blob already: when
 * it is in this datastore, its ref is passed and the job reads it from there
 * like any input, so its bytes never pass through the kernel. One kept
 * elsewhere is refused (UnreachableLazyInput) before anything is written.
 */
export async function storeValues(backend: StorageBackend, enc: Pick<EncodedValues, "specs" | "frames">): Promise<StoredValues> {
  const blobs = new BlobStore(backend);
  await checkLazyInputs(backend, enc.specs);
  const refs: ValueRef[] = [];
  let uploaded = 0;
  let at = 0;
  for (const spec of enc.specs) {
    if (spec.lazy) {
      refs.push({ name: spec.name, type: spec.type, sha256: spec.lazy.sha256, size: spec.lazy.size });
      continue;
    }
    const frames = enc.frames.slice(at, at + spec.frames);
    at += spec.frames;
    const put = await blobs.put(frames);
    if (put.created) uploaded += put.size;
    refs.push({ name: spec.name, type: spec.type, sha256: put.sha256, size: put.size });
  }
  return { refs, uploaded };
}

/**
 * A step's outputs into the datastore. A big container (the serializer's
 * format 2) is streamed into its blob as it is serialized, so the job never
 * holds a second copy of it; everything else goes as `storeValues` writes it.
 */
export async function storeOutputs(backend: StorageBackend, outputs: Record<string, unknown>): Promise<{ refs: ValueRef[]; stubs: OutputStub[] }> {
  const blobs = new BlobStore(backend);
  const rest: Array<[string, unknown, Serialized?]> = [];
  const refs: ValueRef[] = [];
  for (const [name, value] of Object.entries(outputs)) {
    if (typeof value === "function") {
      rest.push([name, value]);
      continue;
    }
    const st = serializeStream(value);
    if (!st.chunked) {
      rest.push([name, value, { header: st.header, chunks: st.chunks as Uint8Array[], size: st.size as number }]);
      continue;
    }
    let first: Iterable<Uint8Array> | null = st.chunks;
    try {
      // A backend that hashes before it writes asks twice: the serializer gives the same bytes again.
      const put = await blobs.putStream(() => {
        const c = first ?? serializeStream(value).chunks;
        first = null;
        return c;
      });
      refs.push({ name, type: st.header.type, sha256: put.sha256, size: put.size });
    } catch {
      // Something V8 refused deep inside (a stub names it), or a datastore that failed (it fails again below, loudly).
      rest.push([name, value, serializeWhole(value)]);
    }
  }
  const enc = encodeValues(rest, false);
  const stored = await storeValues(backend, enc);
  return { refs: [...refs, ...stored.refs], stubs: enc.stubs };
}

/**
 * Reads values back, each verified against its hash, as one frame per value:
 * the shape `decodeValues` takes.
 */
export async function loadValues(backend: StorageBackend, refs: readonly ValueRef[], what: string): Promise<{ specs: ValueSpec[]; frames: Buffer[] }> {
  const blobs = new BlobStore(backend);
  const specs: ValueSpec[] = [];
  const frames: Buffer[] = [];
  for (const r of refs) {
    frames.push(await blobs.read(r.sha256, `${what} \`${r.name}\``));
    specs.push({ name: r.name, type: r.type, frames: 1 });
  }
  return { specs, frames };
}

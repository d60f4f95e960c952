/**
 * Values ⇄ blobs for remote tasks. A value's frames (worker/codec.ts) are its
 * serialized bytes in order, so one value is one blob whose SHA-256 is the
 * artifact hash the history records: an input the kernel already recorded,
 * or one sent before, costs a stat and no upload.
 */
import type { StorageBackend } from "../../store/backend";
import { BlobStore } from "../../store/blobs";
import type { EncodedValues } from "../../worker/codec";
import type { ValueSpec } from "../../worker/events";
import type { ValueRef } from "./protocol";

export interface StoredValues {
  refs: ValueRef[];
  /** Bytes actually written (the rest were in the store already). */
  uploaded: number;
}

/** Writes each value of `enc` as one blob (its frames are never concatenated). */
export async function storeValues(backend: StorageBackend, enc: Pick<EncodedValues, "specs" | "frames">): Promise<StoredValues> {
  const blobs = new BlobStore(backend);
  const refs: ValueRef[] = [];
  let uploaded = 0;
  let at = 0;
  for (const spec of enc.specs) {
    const frames = enc.frames.slice(at, at + spec.frames);
    at += spec.frames;
    const put = await blobs.put(frames);
    if (put.created) uploaded += put.size;
    refs.push({ name: spec.name, type: spec.type, sha256: put.sha256, size: put.size });
  }
  return { refs, uploaded };
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

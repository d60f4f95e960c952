/**
 * The worker's half of lazy values (step/lazy.ts has the kernel's):
 * - outputs whose serialized size is over the kernel's limit are written to
 *   the datastore here and only their reference goes back, so the kernel
 *   never holds their bytes;
 * - inputs the kernel sent as references are read from the datastore here
 *   (hash-verified), so the kernel never reads them either.
 */
import { serializeValue, type Serialized, type ClassResolver } from "../store/serialize";
import { openStore, readStoredValue } from "../client/lazy";
import type { LazyOutputs, ValueSpec } from "./events";

/**
 * Stores the outputs too big to send back. Returns the others (to encode as
 * usual, with the serialization already made) and a spec (no frames) for
 * each stored one. If the datastore can't take a value (full disk, no
 * access), it is sent back as usual with a warning on the cell's stderr:
 * slower and heavier for the kernel, but the step's result is not lost.
 */
export async function storeLazyOutputs(
  outputs: Record<string, unknown>,
  lazy: LazyOutputs | undefined,
): Promise<{ rest: Array<[string, unknown, Serialized?]>; specs: ValueSpec[] }> {
  if (!lazy) return { rest: Object.entries(outputs), specs: [] };
  const rest: Array<[string, unknown, Serialized?]> = [];
  const specs: ValueSpec[] = [];
  for (const [name, value] of Object.entries(outputs)) {
    // Serializing makes views into the value's memory, not copies; the result is reused to send it.
    const s = typeof value === "function" ? undefined : serializeValue(value);
    if (!s || s.header.kind === "stub" || s.size <= lazy.minBytes) {
      rest.push([name, value, s]);
      continue;
    }
    try {
      const ds = await openStore(lazy.store, true);
      const put = await ds.blobs.putUnhashed(s.chunks);
      specs.push({
        name,
        type: s.header.type,
        frames: 0,
        lazy: { store: lazy.store, sha256: put.sha256, size: put.size, kind: s.header.kind, ...(s.header.class ? { class: s.header.class } : {}) },
      });
    } catch (e) {
      process.stderr.write(
        `warning: \`${name}\` could not be kept in the datastore at ${lazy.store.path} (${(e as Error).message}); it is sent to the kernel instead\n`,
      );
      rest.push([name, value, s]);
    }
  }
  return { rest, specs };
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

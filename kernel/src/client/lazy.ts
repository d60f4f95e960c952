/**
 * `Lazy<T>`: a step output too big to bring into the kernel. Its bytes stay
 * in the datastore (written there by the worker, content-addressed); the
 * session holds this handle instead, typed with the value's own type.
 *
 *   const a = await big.load();   // a: Float64Array (read and hash-verified)
 *
 * A later `%%step` that reads `big` gets the value itself, read by its
 * worker straight from the datastore, and its body sees `big` as `T`.
 *
 * `load()` is async on purpose: a value this big should not be read on the
 * kernel's event loop synchronously, and `await` works at a cell's top level.
 */
import { inspect } from "node:util";
import { Datastore } from "../store/datastore";
import type { DatastoreLocation } from "../store/location";
import { deserialize, type Decoded, type ClassResolver } from "../store/serialize";

/** Marks handles across module instances (the kernel's copy and a notebook's own `nbscale`). */
const BRAND = Symbol.for("nbscale.lazy");

export interface LazyRef {
  name: string;
  /** The recorded version (`big@3`); null until the execution is recorded (NBSCALE_RECORD=0). */
  version: number | null;
  sha256: string;
  /** Serialized size in bytes. */
  bytes: number;
  /** Runtime description, e.g. `Float64Array(2097152)`. */
  type: string;
  store: DatastoreLocation;
  /** What the blob holds (the serializer's kind), and a class instance's class name. */
  kind?: "v8" | "source";
  class?: string;
}

export class Lazy<T = unknown> {
  readonly name: string;
  version: number | null;
  readonly sha256: string;
  readonly bytes: number;
  readonly type: string;
  readonly store: DatastoreLocation;
  readonly kind: "v8" | "source";
  readonly class: string | undefined;

  constructor(ref: LazyRef) {
    this.name = ref.name;
    this.version = ref.version;
    this.sha256 = ref.sha256;
    this.bytes = ref.bytes;
    this.type = ref.type;
    this.store = ref.store;
    this.kind = ref.kind ?? "v8";
    this.class = ref.class;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** Reads the value from the datastore, verified against its sha256. */
  load(): Promise<T> {
    return readStoredValue(this.store, this.sha256, this.label) as Promise<T>;
  }

  get label(): string {
    return `${this.name}@${this.version ?? this.sha256.slice(0, 12)}`;
  }

  toJSON(): Pick<LazyRef, "name" | "version" | "sha256" | "bytes" | "type"> & { lazy: true; store: string } {
    return { lazy: true, name: this.name, version: this.version, sha256: this.sha256, bytes: this.bytes, type: this.type, store: this.store.path };
  }

  [inspect.custom](): string {
    return `Lazy<${this.type}> ${this.label} (${this.bytes} bytes in ${this.store.path}; await .load())`;
  }
}

export function isLazy(v: unknown): v is Lazy<unknown> {
  return typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
}

/** The plain fields of a handle (what travels to a worker). */
export function lazyRef(v: Lazy<unknown>): LazyRef {
  return {
    name: v.name,
    version: v.version,
    sha256: v.sha256,
    bytes: v.bytes,
    type: v.type,
    store: v.store,
    kind: v.kind,
    ...(v.class ? { class: v.class } : {}),
  };
}

const stores = new Map<string, Promise<Datastore>>();

/** One open datastore per location per process (the worker reads many values from one). */
export function openStore(loc: DatastoreLocation, create = false): Promise<Datastore> {
  const key = `${loc.kind}:${loc.path}:${create}`;
  let ds = stores.get(key);
  if (!ds) {
    ds = Datastore.open(loc, { create });
    ds.catch(() => stores.delete(key));
    stores.set(key, ds);
  }
  return ds;
}

/** A blob's value, hash-verified; used by `load()` and by workers reading lazy inputs. */
export async function readStoredValue(loc: DatastoreLocation, sha256: string, label: string, resolveClass?: ClassResolver): Promise<unknown> {
  const ds = await openStore(loc);
  const d: Decoded = await ds.blobs.readWith(sha256, label, (r) => deserialize(r, { resolveClass }));
  if (d.kind === "v8") return d.value;
  if (d.kind === "source") return (0, eval)(`(${d.source})`);
  throw new Error(`${label} (${d.type}) can't be recreated: ${d.reason}`);
}

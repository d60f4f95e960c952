/**
 * The client library's history functions, usable in notebook cells and Node
 * scripts:
 *
 *   import { history, artifact } from "nbscale";
 *   const runs = await history({ variable: "model", limit: 5 });
 *   const m = await artifact("model@2");   // m.value, m.version, m.sha256
 *
 * The datastore is found like the CLI finds it: `datastore` option, else
 * NBSCALE_DATASTORE, else `.nbscale/` in the current directory (a kernel's
 * current directory is the notebook's).
 */
import { Datastore } from "../store/datastore";
import { ExecutionRecord } from "../store/executions";
import { resolveDatastore } from "../store/location";
import { ValueKind } from "../store/serialize";
import { VersionRecord } from "../store/artifacts";

export type { ExecutionRecord } from "../store/executions";

export interface StoreOptions {
  /** Datastore directory; overrides NBSCALE_DATASTORE. */
  datastore?: string;
}

export interface HistoryOptions extends StoreOptions {
  notebook?: string;
  cell?: string;
  /** Only executions that read or wrote this variable. */
  variable?: string;
  limit?: number;
}

export interface Artifact<T = unknown> {
  name: string;
  version: number;
  sha256: string;
  /** "v8": `value` is the value; "source": `value` is a function/class's source text. */
  kind: Exclude<ValueKind, "stub">;
  type: string;
  size: number;
  notebook: string | null;
  cell: string | null;
  execution: string | null;
  created: string;
  value: T;
}

const open = new Map<string, Promise<Datastore>>();

function store(options: StoreOptions): Promise<Datastore> {
  const loc = resolveDatastore({ flag: options.datastore, env: process.env, cwd: process.cwd() });
  let ds = open.get(loc.path);
  if (!ds) {
    ds = Datastore.open(loc);
    // Don't cache a failure (the store may be created later).
    ds.catch(() => open.delete(loc.path));
    open.set(loc.path, ds);
  }
  return ds;
}

/** Recorded executions, newest first. */
export async function history(options: HistoryOptions = {}): Promise<ExecutionRecord[]> {
  const ds = await store(options);
  const filter = { ...options };
  delete filter.datastore;
  return ds.history(filter);
}

/**
 * One version of a variable (`"model"` = latest, `"model@2"`, or
 * `artifact("model", 2)`), read and verified against its SHA-256.
 * Throws for a value that was recorded as a stub (it has no value).
 */
export async function artifact<T = unknown>(name: string, version?: number, options: StoreOptions = {}): Promise<Artifact<T>> {
  const ds = await store(options);
  const spec = version === undefined ? name : `${name}@${version}`;
  const { record, kind, value } = await ds.restore(spec);
  return toArtifact<T>(record, kind, value);
}

/** The committed versions of a variable, oldest first. */
export async function versions(name: string, options: StoreOptions & { notebook?: string } = {}): Promise<VersionRecord[]> {
  const ds = await store(options);
  return ds.versions(name, options.notebook !== undefined ? { notebook: options.notebook } : {});
}

function toArtifact<T>(r: VersionRecord, kind: "v8" | "source", value: unknown): Artifact<T> {
  return {
    name: r.name,
    version: r.version,
    sha256: r.sha256,
    kind,
    type: r.type,
    size: r.size,
    notebook: r.notebook,
    cell: r.cell,
    execution: r.execution,
    created: r.created,
    value: value as T,
  };
}

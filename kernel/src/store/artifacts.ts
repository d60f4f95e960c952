/**
 * Variables and their versions: `model@1`, `model@2`, …
 *
 * Versions are numbered per variable name per datastore (one sequence shared
 * by every notebook writing into the store); each version record says which
 * notebook, cell and execution produced it. Version N is the object
 * `vars/<name>/<N>.json`, created exclusively, so two kernels allocating at
 * once can't both get N: the loser moves on to N+1. A version record is
 * visible only once the execution that produced it has committed, so a kernel
 * killed mid-recording leaves nothing visible (fsck lists the leftover).
 * The record names its writer process, so fsck can tell a leftover of a dead
 * kernel from a version a running kernel is about to commit.
 */
import { StorageBackend } from "./backend";
import { BlobStore, ReadOptions } from "./blobs";
import { closeNames, InvalidSpecError, NoSuchVersionError, NotInNotebookError, UnknownVariableError } from "./errors";
import { Decoded, deserialize, DeserializeOptions, ValueKind } from "./serialize";
import { currentPath, inNotebook, type NotebookFilter } from "./notebooks";
import { thisWriter, type WriterIdentity } from "./writer";

export const VARS_PREFIX = "vars/";
const MAX_ENCODED_NAME = 240;

export interface VersionRecord {
  format: 1;
  name: string;
  version: number;
  sha256: string;
  size: number;
  kind: ValueKind;
  type: string;
  class?: string;
  /** TypeScript type text of the variable in the session, when the kernel knew it. */
  ts_type?: string;
  notebook: string | null;
  cell: string | null;
  /** The execution that produced it; the version is visible once that commits. */
  execution: string | null;
  created: string;
  /** The process that wrote it (absent in records of older nbscale versions). */
  writer?: WriterIdentity;
}

export interface ArtifactRef {
  version: number;
  sha256: string;
}

export interface NewVersion {
  sha256: string;
  size: number;
  kind: ValueKind;
  type: string;
  class?: string;
  ts_type?: string;
  notebook: string | null;
  /** The notebook's lineage across renames, for "unchanged since its last version" (default: `notebook`). */
  lineage?: NotebookFilter;
  cell: string | null;
  execution: string | null;
}

/** `model`, `model@3` → name and optional version. */
export function parseArtifactSpec(spec: string): { name: string; version: number | null } {
  const at = spec.lastIndexOf("@");
  if (at <= 0) {
    checkName(spec);
    return { name: spec, version: null };
  }
  const name = spec.slice(0, at);
  const v = spec.slice(at + 1);
  checkName(name);
  if (v === "latest") return { name, version: null };
  if (!/^[1-9][0-9]*$/.test(v)) {
    throw new InvalidSpecError(`\`${spec}\`: a version is a positive whole number, as in NAME@3 (or NAME@latest).`);
  }
  return { name, version: Number(v) };
}

export function checkName(name: string): void {
  if (name.length === 0 || name.includes("@")) {
    throw new InvalidSpecError(`invalid variable name ${JSON.stringify(name)}: it must be non-empty and contain no "@"`);
  }
  if (encodeName(name).length > MAX_ENCODED_NAME) throw new InvalidSpecError(`variable name too long to store: ${name.slice(0, 40)}…`);
}

/**
 * Names become one key segment. Only `[a-z0-9_-]` is kept; everything else,
 * uppercase letters included, is %-escaped so that names differing only in
 * case stay distinct on case-insensitive filesystems (macOS).
 */
export function encodeName(name: string): string {
  let out = "";
  for (const ch of name) {
    if (/^[a-z0-9_-]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, "utf8")) out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

export function decodeName(seg: string): string {
  return Buffer.from(
    seg.replace(/%([0-9A-F]{2})|([^%])/g, (_m, hex: string | undefined, ch: string | undefined) =>
      hex ? String.fromCharCode(parseInt(hex, 16)) : (ch as string),
    ),
    "latin1",
  ).toString("utf8");
}

export function versionKey(name: string, version: number): string {
  return `${VARS_PREFIX}${encodeName(name)}/${String(version).padStart(10, "0")}.json`;
}

/** Parses a key under `vars/` into name and version, or null. */
export function parseVersionKey(key: string): { name: string; version: number } | null {
  const m = /^vars\/([^/]+)\/([0-9]{10})\.json$/.exec(key);
  return m ? { name: decodeName(m[1]), version: Number(m[2]) } : null;
}

export interface VersionFilter {
  /** Only versions produced by this notebook (a path, or its lineage across renames). */
  notebook?: NotebookFilter;
}

/** Whether `rec` was produced by `scope` (null: by no notebook, e.g. a script). */
function producedBy(rec: VersionRecord, scope: NotebookFilter | null): boolean {
  return scope === null ? rec.notebook === null : inNotebook(scope, rec.notebook, rec.created);
}

export class ArtifactStore {
  private readonly records = new Map<string, VersionRecord>();
  /** Per name, the version numbers seen allocated, ascending (see allocated()). */
  private readonly known = new Map<string, number[]>();

  constructor(
    private readonly backend: StorageBackend,
    private readonly blobs: BlobStore,
    /** Whether an execution has committed (versions of uncommitted ones are invisible). */
    private readonly isCommitted: (executionId: string) => Promise<boolean>,
    /** Named in every record this store writes (tests stand in for a writer on another host). */
    readonly writer: WriterIdentity = thisWriter(),
  ) {}

  /** Every name with at least one allocated version (visible or not), sorted. */
  async names(): Promise<string[]> {
    const names = new Set<string>();
    for await (const key of this.backend.list(VARS_PREFIX)) {
      const p = parseVersionKey(key);
      if (p) names.add(p.name);
    }
    return [...names].sort();
  }

  /**
   * Allocated version numbers of `name`, ascending (including uncommitted
   * ones). The folder is listed once per name; after that the numbers other
   * writers took since are found by looking at the ones above the highest
   * known, one by one: versions are only ever allocated upwards (record()),
   * so recording the 1,000th version costs a look, not a listing of 999.
   */
  async allocated(name: string): Promise<number[]> {
    let known = this.known.get(name);
    if (!known) {
      known = [];
      for await (const key of this.backend.list(`${VARS_PREFIX}${encodeName(name)}/`)) {
        const p = parseVersionKey(key);
        if (p && p.name === name) known.push(p.version);
      }
      known.sort((a, b) => a - b);
      this.known.set(name, known);
    } else {
      for (let next = (known[known.length - 1] ?? 0) + 1; await this.backend.stat(versionKey(name, next)); next++) known.push(next);
    }
    return [...known];
  }

  async readRecord(name: string, version: number): Promise<VersionRecord | null> {
    const key = versionKey(name, version);
    const cached = this.records.get(key);
    if (cached) return cached;
    const buf = await this.backend.get(key);
    if (!buf) return null;
    const rec = JSON.parse(buf.toString("utf8")) as VersionRecord;
    this.records.set(key, rec);
    return rec;
  }

  async visible(rec: VersionRecord): Promise<boolean> {
    return rec.execution === null || (await this.isCommitted(rec.execution));
  }

  /** Visible versions of `name`, ascending. */
  async versions(name: string, filter: VersionFilter = {}): Promise<VersionRecord[]> {
    const out: VersionRecord[] = [];
    for (const v of await this.allocated(name)) {
      const rec = await this.readRecord(name, v);
      if (!rec || !(await this.visible(rec))) continue;
      if (filter.notebook !== undefined && !producedBy(rec, filter.notebook)) continue;
      out.push(rec);
    }
    return out;
  }

  /** The record for `name` (latest visible) or `name@version`; errors name close matches. */
  async resolve(name: string, version: number | null, filter: VersionFilter = {}): Promise<VersionRecord> {
    const allocated = await this.allocated(name);
    if (allocated.length === 0) {
      const names = await this.names();
      throw new UnknownVariableError(name, closeNames(name, names), names.length);
    }
    if (version !== null) {
      const rec = allocated.includes(version) ? await this.readRecord(name, version) : null;
      if (rec && (await this.visible(rec)) && (filter.notebook === undefined || producedBy(rec, filter.notebook))) return rec;
      throw new NoSuchVersionError(
        name,
        version,
        (await this.versions(name, filter)).map((r) => r.version),
      );
    }
    for (let i = allocated.length - 1; i >= 0; i--) {
      const rec = await this.readRecord(name, allocated[i]);
      if (rec && (await this.visible(rec)) && (filter.notebook === undefined || producedBy(rec, filter.notebook))) return rec;
    }
    if (filter.notebook !== undefined) {
      const others = await this.versions(name);
      if (others.length > 0) {
        throw new NotInNotebookError(
          name,
          currentPath(filter.notebook),
          others.map((r) => r.notebook ?? "(no notebook)"),
        );
      }
    }
    throw new NoSuchVersionError(name, allocated[allocated.length - 1], []);
  }

  /** The newest visible version of `name` recorded by `notebook`, or null. */
  async latestFrom(name: string, notebook: NotebookFilter | null): Promise<VersionRecord | null> {
    const allocated = await this.allocated(name);
    for (let i = allocated.length - 1; i >= 0; i--) {
      const rec = await this.readRecord(name, allocated[i]);
      if (rec && producedBy(rec, notebook) && (await this.visible(rec))) return rec;
    }
    return null;
  }

  /**
   * Records `value` as the next version of `name` unless the latest visible
   * version from the same notebook has the same sha256, in which case that
   * version is returned (`created: false`). The blob must already be stored.
   */
  async record(name: string, v: NewVersion): Promise<{ record: VersionRecord; created: boolean }> {
    checkName(name);
    const allocated = await this.allocated(name);
    for (let i = allocated.length - 1; i >= 0; i--) {
      const rec = await this.readRecord(name, allocated[i]);
      if (!rec || !producedBy(rec, v.lineage ?? v.notebook) || !(await this.visible(rec))) continue;
      if (rec.sha256 === v.sha256) return { record: rec, created: false };
      break;
    }
    let next = allocated.length > 0 ? allocated[allocated.length - 1] + 1 : 1;
    for (;;) {
      const rec: VersionRecord = {
        format: 1,
        name,
        version: next,
        sha256: v.sha256,
        size: v.size,
        kind: v.kind,
        type: v.type,
        ...(v.class ? { class: v.class } : {}),
        ...(v.ts_type ? { ts_type: v.ts_type } : {}),
        notebook: v.notebook,
        cell: v.cell,
        execution: v.execution,
        created: new Date().toISOString(),
        writer: this.writer,
      };
      const key = versionKey(name, next);
      // A free number under a taken one is a hole (a leftover fsck removed): a version there would read
      // as older than the newer one above it. Looked for before taking the number, since a writer racing
      // us takes the number above ours right after, which is no hole.
      const above = await Promise.all([1, 2].map((d) => this.backend.stat(versionKey(name, next + d))));
      if (above.some((st) => st !== null)) {
        this.known.delete(name);
        const fresh = await this.allocated(name);
        next = Math.max(next + 1, (fresh[fresh.length - 1] ?? 0) + 1);
        continue;
      }
      if (await this.backend.createExclusive(key, Buffer.from(JSON.stringify(rec, null, 1) + "\n"))) {
        this.records.set(key, rec);
        const known = this.known.get(name);
        if (known && known[known.length - 1] === next - 1) known.push(next);
        return { record: rec, created: true };
      }
      next++; // another kernel took this number
    }
  }

  /** Reads and verifies the value of a version. */
  async load(rec: VersionRecord, options: DeserializeOptions & ReadOptions = {}): Promise<Decoded> {
    return this.blobs.readWith(rec.sha256, `${rec.name}@${rec.version}`, (r) => deserialize(r, options), options);
  }
}

/**
 * Execution records: one immutable JSON object per cell execution, written
 * (exclusively) only after every blob it references exists. Writing it *is*
 * the commit: before it, nothing of the execution is visible.
 *
 * The same key is also how an execution is *abandoned*: `fsck --clean`
 * removes the version records of an execution that never committed only
 * after creating an abandonment marker at its key, exclusively. Whichever of
 * the commit and the marker is created first wins, on every backend, with no
 * clocks involved: once the marker is there the writer can no longer commit
 * a record naming the versions fsck removes (it records again under a new id,
 * see Datastore.recordExecution), and once the commit is there fsck keeps them.
 */
import { randomBytes } from "node:crypto";
import { StorageBackend } from "./backend";
import { BlobStore } from "./blobs";
import { ArtifactRef } from "./artifacts";
import { StoreError, UnknownExecutionError } from "./errors";
import { inNotebook, type NotebookFilter } from "./notebooks";

export const EXECUTIONS_PREFIX = "executions/";
/** Logs and display outputs above this size are stored as blobs. */
export const INLINE_LIMIT = 64 * 1024;
const LOG_HEAD = 4096;
const ID_RE = /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$/;

export type ExecutionStatus = "ok" | "error" | "aborted";

/** Output text: inline when small, else a blob plus its head for listings. */
export type LogRef = { text: string; size: number } | { blob: string; size: number; head: string };
/** Jupyter display/execute_result outputs, inline or as a JSON blob. */
export type DisplayRef = { outputs: unknown[] } | { blob: string; size: number; count: number };

export interface OutputRef extends ArtifactRef {
  kind: string;
  type: string;
  ts_type?: string;
  size: number;
  /** False when the value was unchanged and an existing version was reused. */
  new_version: boolean;
}

export interface ExecutionError {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** What `abandon` leaves at an execution's key instead of its record. */
export interface AbandonedMarker {
  format: 1;
  id: string;
  abandoned: { by: string; host: string; pid: number; at: string };
}

export function isAbandonedMarker(x: unknown): x is AbandonedMarker {
  return (
    typeof x === "object" && x !== null && typeof (x as { abandoned?: unknown }).abandoned === "object" && (x as { abandoned?: unknown }).abandoned !== null
  );
}

/** The commit found the execution abandoned: nothing was committed under this id. */
export class ExecutionAbandonedError extends StoreError {
  constructor(
    readonly id: string,
    readonly marker: AbandonedMarker,
  ) {
    super(
      `execution ${id} was abandoned by ${marker.abandoned.by} (pid ${marker.abandoned.pid} on ${marker.abandoned.host}, ${marker.abandoned.at}) before it committed`,
    );
  }
}

export interface ExecutionRecord {
  format: 1;
  id: string;
  notebook: string | null;
  cell: string;
  execution_count: number | null;
  code: string;
  code_sha256: string;
  /** `%%step` name and options; null for a plain kernel cell. */
  step: { name: string | null; options: Record<string, unknown> } | null;
  inputs: Record<string, ArtifactRef>;
  outputs: Record<string, OutputRef>;
  stdout: LogRef;
  stderr: LogRef;
  display: DisplayRef;
  status: ExecutionStatus;
  error: ExecutionError | null;
  started: string;
  finished: string;
  target: string;
  worker: { host: string; pid: number | null; id: string | null };
  memory: { requested_bytes: number | null; peak_bytes: number | null };
  environment: { node: string; nbscale: string; package_lock_sha256: string | null };
}

/** The `nbscale history --json` entry shape fixed by PRODUCT.md. */
export interface ExecutionSummary {
  id: string;
  cell: string;
  code_sha256: string;
  target: string;
  status: string;
  started: string;
  finished: string;
  inputs: Record<string, ArtifactRef>;
  outputs: Record<string, ArtifactRef>;
}

export function summarize(r: ExecutionRecord): ExecutionSummary {
  const refs = (m: Record<string, ArtifactRef>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { version: v.version, sha256: v.sha256 }]));
  return {
    id: r.id,
    cell: r.cell,
    code_sha256: r.code_sha256,
    target: r.target,
    status: r.status,
    started: r.started,
    finished: r.finished,
    inputs: refs(r.inputs),
    outputs: refs(r.outputs),
  };
}

let lastIdMs = 0;

/**
 * Sortable id: UTC start time to the millisecond, then randomness. Ids made
 * by one process within the same millisecond are nudged forward by a
 * millisecond so that quick successive cells still list in order.
 */
export function newExecutionId(started: Date = new Date()): string {
  let ms = started.getTime();
  if (ms <= lastIdMs && lastIdMs - ms < 1000) ms = lastIdMs + 1;
  lastIdMs = Math.max(lastIdMs, ms);
  const t = new Date(ms).toISOString().replace(/[-:.]/g, ""); // 20250102T030405678Z
  return `${t}-${randomBytes(4).toString("hex")}`;
}

export function isExecutionId(id: string): boolean {
  return ID_RE.test(id);
}

export function executionKey(id: string): string {
  if (!isExecutionId(id)) throw new StoreError(`not an execution id: ${id}`);
  return `${EXECUTIONS_PREFIX}${id}.json`;
}

export interface ExecutionFilter {
  /** A path, or a lineage across renames (see notebooks.ts). */
  notebook?: NotebookFilter;
  cell?: string;
  /** Executions that read or wrote this variable. */
  variable?: string;
  limit?: number;
}

export class ExecutionStore {
  private readonly committed = new Set<string>();
  /** Abandoned ids: as permanent as commits. */
  private readonly abandoned = new Set<string>();
  private readonly cache = new Map<string, ExecutionRecord>();

  constructor(
    private readonly backend: StorageBackend,
    private readonly blobs: BlobStore,
  ) {}

  /** The commit: after this returns the execution is visible to every reader. */
  async commit(record: ExecutionRecord): Promise<void> {
    const body = Buffer.from(JSON.stringify(record, null, 1) + "\n", "utf8");
    if (!(await this.backend.createExclusive(executionKey(record.id), body))) {
      const there = await this.readKey(record.id);
      if (isAbandonedMarker(there)) throw new ExecutionAbandonedError(record.id, there);
      throw new StoreError(`execution ${record.id} is already recorded (ids must be unique)`);
    }
    this.committed.add(record.id);
    this.cache.set(record.id, record);
  }

  /**
   * Makes sure `id` never commits, unless it already has: "abandoned" when
   * the marker is now at its key (this call's or an earlier one), "committed"
   * when the execution's record is.
   */
  async abandon(id: string, by: { by: string; host: string; pid: number }): Promise<"abandoned" | "committed"> {
    const marker: AbandonedMarker = { format: 1, id, abandoned: { ...by, at: new Date().toISOString() } };
    if (await this.backend.createExclusive(executionKey(id), Buffer.from(JSON.stringify(marker) + "\n", "utf8"))) {
      this.abandoned.add(id);
      return "abandoned";
    }
    const there = await this.readKey(id);
    if (there === null || isAbandonedMarker(there)) {
      // null: the key exists (the create lost) but reads as no JSON object; it is not a commit either way.
      this.abandoned.add(id);
      return "abandoned";
    }
    return "committed";
  }

  async isCommitted(id: string): Promise<boolean> {
    if (this.committed.has(id)) return true;
    if (this.abandoned.has(id) || !isExecutionId(id)) return false;
    // A record or an abandonment marker, each permanent, so `get` caches either; absence is not cached.
    return (await this.get(id)) !== null;
  }

  /** The parsed object at an execution's key; null when absent or not JSON. */
  private async readKey(id: string): Promise<unknown> {
    const buf = await this.backend.get(executionKey(id));
    if (!buf) return null;
    try {
      return JSON.parse(buf.toString("utf8")) as unknown;
    } catch {
      return null;
    }
  }

  /** Committed ids, newest first. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for await (const key of this.backend.list(EXECUTIONS_PREFIX)) {
      const m = /^executions\/(.+)\.json$/.exec(key);
      if (m && isExecutionId(m[1])) ids.push(m[1]);
    }
    return ids.sort().reverse();
  }

  /** The committed record; null when absent or abandoned. */
  async get(id: string): Promise<ExecutionRecord | null> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    if (this.abandoned.has(id)) return null;
    const buf = await this.backend.get(executionKey(id));
    if (!buf) return null;
    const parsed = JSON.parse(buf.toString("utf8")) as ExecutionRecord | AbandonedMarker;
    if (isAbandonedMarker(parsed)) {
      this.abandoned.add(id);
      return null;
    }
    const rec = parsed;
    this.cache.set(id, rec);
    this.committed.add(id);
    return rec;
  }

  /** By full id, a unique prefix of one (like git), or its random suffix. */
  async find(idOrPrefix: string): Promise<ExecutionRecord> {
    if (isExecutionId(idOrPrefix)) {
      const rec = await this.get(idOrPrefix);
      if (rec) return rec;
      throw new UnknownExecutionError(idOrPrefix, []);
    }
    const matches = idOrPrefix.length > 0 ? (await this.ids()).filter((id) => id.startsWith(idOrPrefix) || id.endsWith(`-${idOrPrefix}`)) : [];
    if (matches.length !== 1) throw new UnknownExecutionError(idOrPrefix, matches);
    const rec = await this.get(matches[0]);
    if (!rec) throw new UnknownExecutionError(idOrPrefix, []);
    return rec;
  }

  /** Committed executions, newest first. */
  async list(filter: ExecutionFilter = {}): Promise<ExecutionRecord[]> {
    const out: ExecutionRecord[] = [];
    for (const id of await this.ids()) {
      if (filter.limit !== undefined && out.length >= filter.limit) break;
      const r = await this.get(id);
      if (!r) continue;
      if (filter.notebook !== undefined && !inNotebook(filter.notebook, r.notebook, r.started)) continue;
      if (filter.cell !== undefined && r.cell !== filter.cell) continue;
      if (filter.variable !== undefined && !(filter.variable in r.inputs) && !(filter.variable in r.outputs)) continue;
      out.push(r);
    }
    return out;
  }

  /** Stores a log (text, or UTF-8 chunks) as inline text or, when large, as a blob. */
  async storeLog(log: string | readonly Uint8Array[]): Promise<LogRef> {
    const chunks: readonly Uint8Array[] = typeof log === "string" ? [Buffer.from(log, "utf8")] : log;
    let size = 0;
    for (const c of chunks) size += c.byteLength;
    if (size <= INLINE_LIMIT) {
      const text = typeof log === "string" ? log : Buffer.concat(chunks).toString("utf8");
      return { text, size };
    }
    const put = await this.blobs.put(chunks);
    return { blob: put.sha256, size, head: headOf(chunks) };
  }

  async storeDisplay(outputs: unknown[]): Promise<DisplayRef> {
    const bytes = Buffer.from(JSON.stringify(outputs), "utf8");
    if (bytes.byteLength <= INLINE_LIMIT) return { outputs };
    const put = await this.blobs.put([bytes]);
    return { blob: put.sha256, size: bytes.byteLength, count: outputs.length };
  }

  /** Full text of a log, verified when it is a blob. */
  async readLog(ref: LogRef, label: string): Promise<string> {
    if ("text" in ref) return ref.text;
    return (await this.blobs.read(ref.blob, label)).toString("utf8");
  }

  async readDisplay(ref: DisplayRef, label: string): Promise<unknown[]> {
    if ("outputs" in ref) return ref.outputs;
    return JSON.parse((await this.blobs.read(ref.blob, label)).toString("utf8")) as unknown[];
  }
}

/** The first LOG_HEAD characters of a chunked log, without decoding all of it. */
function headOf(chunks: readonly Uint8Array[]): string {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (const c of chunks) {
    if (n >= LOG_HEAD * 4) break;
    parts.push(c.subarray(0, LOG_HEAD * 4 - n));
    n += parts[parts.length - 1].byteLength;
  }
  return Buffer.concat(parts).toString("utf8").slice(0, LOG_HEAD);
}

/** Every blob an execution record references (fsck checks they exist). */
export function referencedBlobs(r: ExecutionRecord): Array<{ sha256: string; what: string }> {
  const out: Array<{ sha256: string; what: string }> = [];
  for (const [n, ref] of Object.entries(r.inputs)) out.push({ sha256: ref.sha256, what: `input ${n}@${ref.version}` });
  for (const [n, ref] of Object.entries(r.outputs)) out.push({ sha256: ref.sha256, what: `output ${n}@${ref.version}` });
  if ("blob" in r.stdout) out.push({ sha256: r.stdout.blob, what: "stdout" });
  if ("blob" in r.stderr) out.push({ sha256: r.stderr.blob, what: "stderr" });
  if ("blob" in r.display) out.push({ sha256: r.display.blob, what: "display outputs" });
  return out;
}

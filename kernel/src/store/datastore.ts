/**
 * The datastore as the kernel, the worker, the CLI and the client library
 * see it: record an execution, list history, load a variable version.
 */
import { hostname } from "node:os";
import { dirname } from "node:path";
import { createHash } from "node:crypto";
import { StorageBackend } from "./backend";
import { BlobStore, sha256Of } from "./blobs";
import { ArtifactRef, ArtifactStore, checkName, NewVersion, parseArtifactSpec, VersionFilter, VersionRecord } from "./artifacts";
import { environmentInfo } from "./env";
import { ContentChangedError, DatastoreConfigError, NotRestorableError, StoreError } from "./errors";
import {
  ExecutionAbandonedError,
  ExecutionError,
  ExecutionFilter,
  ExecutionRecord,
  ExecutionStatus,
  ExecutionStore,
  newExecutionId,
  OutputRef,
} from "./executions";
import { backendFor } from "./backends";
import { NotebookRenames, type NotebookFilter } from "./notebooks";
import { DatastoreLocation, describeLocation, resolveDatastore } from "./location";
import { Decoded, DeserializeOptions, serializeValue, Serialized } from "./serialize";
import type { WriterIdentity } from "./writer";

const MARKER_KEY = "nbscale-store.json";
const STORE_FORMAT = 1;
/** Commits tried while fsck keeps fencing this writer off (only a grace shorter than one recording lets it). */
const MAX_COMMIT_ATTEMPTS = 5;

/** One recordExecution's progress, for settling what it leaves behind when it fails. */
interface Attempt {
  id: string;
  /** Whether a version record naming `id` may have been written. */
  allocated: boolean;
}

export interface ExecutionInput {
  /** Pre-allocated id (e.g. announced to the frontend at start); generated if absent. */
  id?: string;
  /** Notebook path (absolute, or as the frontend names it); null for scripts. */
  notebook: string | null;
  /** The notebook's lineage across renames (see notebooks.ts); defaults to `notebook`. */
  lineage?: NotebookFilter;
  cell: string;
  executionCount?: number | null;
  code: string;
  step?: { name: string | null; options: Record<string, unknown> } | null;
  /** Versions the cell read (the session knows which version it bound). */
  inputs?: Record<string, ArtifactRef>;
  /**
   * Variables the cell defined or changed, as live values. They are
   * serialized and hashed synchronously when `recordExecution` is called, so
   * call it before any other code can mutate them.
   */
  outputs?: Record<string, unknown>;
  /** Outputs serialized earlier with `prepareOutputs` (the kernel snapshots at cell end). */
  preparedOutputs?: PreparedOutput[];
  /** Outputs already serialized elsewhere (e.g. by a worker). */
  serializedOutputs?: Record<string, Serialized>;
  /** TypeScript type text of outputs, for `%restore` to rebind with its type. */
  outputTypes?: Record<string, string>;
  /** Text, or UTF-8 chunks (a long log need not become one string). */
  stdout?: string | readonly Uint8Array[];
  stderr?: string | readonly Uint8Array[];
  /** Jupyter display_data / execute_result outputs. */
  display?: unknown[];
  status: ExecutionStatus;
  error?: ExecutionError | null;
  started: Date | string;
  finished?: Date | string;
  target: string;
  worker?: { host?: string; pid?: number | null; id?: string | null };
  memory?: { requestedBytes?: number | null; peakBytes?: number | null };
  /** Defaults to this process's Node, nbscale, and the notebook folder's lockfile. */
  environment?: ExecutionRecord["environment"];
}

export type LoadOptions = VersionFilter &
  DeserializeOptions & {
    /** Work for this thread while the version's bytes are read and verified (see ReadOptions). */
    whileReading?: (record: VersionRecord) => void;
    /** Bytes of the version read and verified so far (see ReadOptions). */
    onProgress?: (done: number, total: number, record: VersionRecord) => void;
  };

export interface LoadedArtifact {
  record: VersionRecord;
  decoded: Decoded;
}

export interface OpenOptions {
  /** Create the store when missing (writers). Readers refuse a missing store. */
  create?: boolean;
  /** The writer named in version records (default: this process); tests stand in for one on another host. */
  writer?: WriterIdentity;
}

export class Datastore {
  readonly blobs: BlobStore;
  readonly artifacts: ArtifactStore;
  readonly executions: ExecutionStore;
  readonly notebooks: NotebookRenames;

  private constructor(
    readonly backend: StorageBackend,
    readonly location: DatastoreLocation | null,
    writer: WriterIdentity | undefined,
  ) {
    this.blobs = new BlobStore(backend);
    this.executions = new ExecutionStore(backend, this.blobs);
    this.notebooks = new NotebookRenames(backend);
    this.artifacts = new ArtifactStore(backend, this.blobs, (id) => this.executions.isCommitted(id), writer);
  }

  static async open(where: DatastoreLocation | string, options: OpenOptions = {}): Promise<Datastore> {
    // A string is a location as a worker is given it: a directory, or s3://bucket/prefix (a remote flow step's datastore).
    const loc: DatastoreLocation =
      typeof where !== "string"
        ? where
        : /^s3:\/\//i.test(where)
          ? resolveDatastore({ flag: where, env: {}, cwd: "/" })
          : { kind: "fs", path: where, source: "flag" };
    return Datastore.openBackend(backendFor(loc), options, loc);
  }

  /** For other backends (S3 later) and tests. */
  static async openBackend(backend: StorageBackend, options: OpenOptions = {}, loc: DatastoreLocation | null = null): Promise<Datastore> {
    const ds = new Datastore(backend, loc, options.writer);
    const marker = await backend.get(MARKER_KEY).catch(() => null);
    if (marker) {
      const fmt = (JSON.parse(marker.toString("utf8")) as { format?: number }).format ?? 0;
      if (fmt > STORE_FORMAT) {
        throw new DatastoreConfigError(`The datastore at ${backend.location} has format ${fmt}; this nbscale reads format ${STORE_FORMAT}. Upgrade nbscale.`);
      }
    } else if (options.create) {
      const body = JSON.stringify({ kind: "nbscale-datastore", format: STORE_FORMAT, created: new Date().toISOString() });
      await backend.createExclusive(MARKER_KEY, Buffer.from(body + "\n"));
    } else if (!(await backend.exists())) {
      const where = loc ? describeLocation(loc) : backend.location;
      throw new DatastoreConfigError(`No datastore at ${where}. Run from the notebook's directory, pass --datastore DIR, or set NBSCALE_DATASTORE.`);
    }
    return ds;
  }

  /**
   * Records one cell execution: stores output values and large logs as
   * blobs, allocates variable versions, then commits the record. Throws on
   * storage failure (disk full, permissions); the caller reports that as a
   * warning and never fails the user's cell for it. Unserializable outputs
   * don't throw: they are recorded as stubs.
   *
   * The returned record's id is `input.id` unless `fsck --clean` abandoned
   * that execution while it was being recorded (see ExecutionStore.abandon):
   * then the same values are committed under a new id.
   */
  async recordExecution(input: ExecutionInput): Promise<ExecutionRecord> {
    // Synchronous part: snapshot every output before anything can change it.
    const prepared: PreparedOutput[] = [...(input.preparedOutputs ?? []), ...prepareOutputs(input.outputs ?? {})];
    for (const [name, s] of Object.entries(input.serializedOutputs ?? {})) {
      checkName(name);
      prepared.push({ name, s, live: false, value: undefined });
    }
    const started = toIso(input.started);
    const attempt: Attempt = { id: input.id ?? newExecutionId(new Date(started)), allocated: false };
    try {
      return await this.recordAttempt(input, prepared, started, attempt);
    } catch (e) {
      // What this attempt allocated can never commit now: saying so lets fsck
      // remove it at once instead of keeping it for as long as this process
      // lives. Should the commit have landed after all (an answer lost), the
      // marker loses to it and the record stands.
      if (attempt.allocated && !(e instanceof ExecutionAbandonedError)) {
        const me = this.artifacts.writer;
        await this.executions.abandon(attempt.id, { by: "the recording that failed", host: me.host, pid: me.pid }).catch(() => undefined);
      }
      throw e;
    }
  }

  private async recordAttempt(input: ExecutionInput, prepared: PreparedOutput[], started: string, attempt: Attempt): Promise<ExecutionRecord> {
    const outputs: Record<string, OutputRef> = {};
    /** Each output's version as recorded, to record it again under another execution id. */
    const newVersions: Array<{ name: string; tsType: string | undefined; of: (execution: string) => NewVersion }> = [];
    const ref = (record: VersionRecord, created: boolean, tsType: string | undefined): OutputRef => ({
      version: record.version,
      sha256: record.sha256,
      kind: record.kind,
      type: record.type,
      ...(tsType ? { ts_type: tsType } : {}),
      size: record.size,
      new_version: created,
    });
    const allocate = (name: string, v: NewVersion) => {
      attempt.allocated = true;
      return this.artifacts.record(name, v);
    };
    // Logs don't depend on the outputs: they are written alongside them.
    const logs = Promise.all([
      this.executions.storeLog(input.stdout ?? ""),
      this.executions.storeLog(input.stderr ?? ""),
      this.executions.storeDisplay(input.display ?? []),
    ]);
    logs.catch(() => undefined); // awaited below, after the outputs
    for (const p of prepared) {
      const tsType = input.outputTypes?.[p.name];
      const version =
        (sha256: string, size: number, s: Serialized) =>
        (execution: string): NewVersion => ({
          sha256,
          size,
          kind: s.header.kind,
          type: s.header.type,
          ...(s.header.class ? { class: s.header.class } : {}),
          ...(tsType ? { ts_type: tsType } : {}),
          notebook: input.notebook,
          ...(input.lineage ? { lineage: input.lineage } : {}),
          cell: input.cell,
          execution,
        });
      let recorded: { record: VersionRecord; created: boolean };
      const early = finalHash(p);
      if (early) {
        // The hash can't change during the write, so the version record (not
        // visible before the commit below) is written alongside the blob:
        // one round of file and directory fsyncs instead of two.
        const of = version(early.sha256, early.size, p.s);
        newVersions.push({ name: p.name, tsType, of });
        const [stored, versioned] = await Promise.all([this.storeOutput(p, input.lineage ?? input.notebook, early), allocate(p.name, of(attempt.id))]);
        if (stored.sha256 !== early.sha256) throw new StoreError(`\`${p.name}\`: its bytes changed while being stored`);
        recorded = versioned;
      } else {
        const { sha256, size, s } = await this.storeOutput(p, input.lineage ?? input.notebook);
        const of = version(sha256, size, s);
        newVersions.push({ name: p.name, tsType, of });
        recorded = await allocate(p.name, of(attempt.id));
      }
      outputs[p.name] = ref(recorded.record, recorded.created, tsType);
    }
    const [stdout, stderr, display] = await logs;

    const record: ExecutionRecord = {
      format: 1,
      id: attempt.id,
      notebook: input.notebook,
      cell: input.cell,
      execution_count: input.executionCount ?? null,
      code: input.code,
      code_sha256: createHash("sha256").update(input.code, "utf8").digest("hex"),
      step: input.step ?? null,
      inputs: Object.fromEntries(Object.entries(input.inputs ?? {}).map(([k, v]) => [k, { version: v.version, sha256: v.sha256 }])),
      outputs,
      stdout,
      stderr,
      display,
      status: input.status,
      error: input.error ?? null,
      started,
      finished: toIso(input.finished ?? new Date()),
      target: input.target,
      worker: {
        host: input.worker?.host ?? hostname(),
        pid: input.worker?.pid === undefined ? process.pid : input.worker.pid,
        id: input.worker?.id ?? null,
      },
      memory: {
        requested_bytes: input.memory?.requestedBytes ?? null,
        peak_bytes: input.memory?.peakBytes ?? null,
      },
      environment: input.environment ?? environmentInfo(input.notebook ? dirname(input.notebook) : null),
    };
    for (let n = 1; ; n++) {
      try {
        await this.executions.commit(record);
        return record;
      } catch (e) {
        // `fsck --clean` took this writer for a dead one (it runs on another
        // host, or was stopped for longer than the grace period) and may have
        // removed the versions allocated so far. Blobs are never removed, so
        // the same values are recorded again under a new id, with versions
        // allocated afresh: nothing is lost, and no commit names a removed record.
        if (!(e instanceof ExecutionAbandonedError) || n >= MAX_COMMIT_ATTEMPTS) throw e;
        attempt.id = record.id = newExecutionId(new Date(started));
        for (const v of newVersions) {
          const again = await allocate(v.name, v.of(record.id));
          outputs[v.name] = ref(again.record, again.created, v.tsType);
        }
      }
    }
  }

  /**
   * Writes one output's bytes. New content is written in one pass (hashed as
   * it is written). Only when the previous version of the same name from the
   * same notebook has the same size (likely unchanged) or the value is small
   * is it hashed first, so an unchanged value costs a hash and no write.
   */
  private async storeOutput(
    p: PreparedOutput,
    notebook: NotebookFilter | null,
    hashed?: { sha256: string; size: number },
  ): Promise<{ sha256: string; size: number; s: Serialized }> {
    let s = p.s;
    if (p.stored) {
      if (!(await this.blobs.has(p.stored.sha256))) {
        throw new StoreError(`\`${p.name}\`: its value (sha256:${p.stored.sha256.slice(0, 12)}) is missing from the datastore`);
      }
      return { sha256: p.stored.sha256, size: p.stored.size, s };
    }
    const prev = s.size <= HASH_FIRST_BELOW ? null : await this.artifacts.latestFrom(p.name, notebook);
    // A large previous version of the same size: its BLAKE3 chunk manifest says at ~3x SHA-256's speed whether these are its bytes.
    const same =
      prev && prev.size === s.size && !hashed ? (p.differsFrom === prev.sha256 ? false : await this.blobs.matches(prev.sha256, prev.size, s.chunks)) : null;
    if (same === true && prev && (await this.blobs.has(prev.sha256))) return { sha256: prev.sha256, size: prev.size, s };
    if (s.size > HASH_FIRST_BELOW && (!prev || prev.size !== s.size || same === false)) {
      const put = await this.blobs.putUnhashed(s.chunks);
      return { sha256: put.sha256, size: put.size, s };
    }
    for (let attempt = 0; ; attempt++) {
      const { sha256, size } = attempt === 0 && hashed ? hashed : sha256Of(s.chunks);
      try {
        await this.blobs.putHashed(s.chunks, sha256, size);
        return { sha256, size, s };
      } catch (e) {
        // Live memory changed during the write: record what it holds now.
        if (!(e instanceof ContentChangedError) || attempt >= 2 || !p.live) throw e;
        s = serializeValue(p.value);
      }
    }
  }

  /** Newest first. */
  history(filter: ExecutionFilter = {}): Promise<ExecutionRecord[]> {
    return this.executions.list(filter);
  }

  versions(name: string, filter: VersionFilter = {}): Promise<VersionRecord[]> {
    return this.artifacts.versions(name, filter);
  }

  /** Resolves `NAME`, `NAME@N` or `NAME@latest` to a committed version record. */
  resolve(spec: string, filter: VersionFilter = {}): Promise<VersionRecord> {
    const { name, version } = parseArtifactSpec(spec);
    return this.artifacts.resolve(name, version, filter);
  }

  /** Resolves and reads (verifying the hash) a version. */
  async load(spec: string, options: LoadOptions = {}): Promise<LoadedArtifact> {
    const record = await this.resolve(spec, options.notebook !== undefined ? { notebook: options.notebook } : {});
    const { whileReading, onProgress, ...rest } = options;
    return {
      record,
      decoded: await this.artifacts.load(record, {
        ...rest,
        ...(whileReading ? { whileReading: () => whileReading(record) } : {}),
        ...(onProgress ? { onProgress: (done: number, total: number) => onProgress(done, total, record) } : {}),
      }),
    };
  }

  /**
   * The live value of a version (what `%restore` binds). Functions/classes
   * come back as their source text (`kind: "source"`); stubs can't be restored.
   */
  async restore(spec: string, options: LoadOptions = {}): Promise<{ record: VersionRecord; kind: "v8" | "source"; value: unknown }> {
    const { record, decoded } = await this.load(spec, options);
    switch (decoded.kind) {
      case "v8":
        return { record, kind: "v8", value: decoded.value };
      case "source":
        return { record, kind: "source", value: decoded.source };
      case "stub":
        throw new NotRestorableError(
          `${record.name}@${record.version} (${decoded.type}) was recorded as a stub, not a value: ${decoded.reason}` +
            (decoded.path ? ` (at \`${decoded.path}\`)` : "") +
            `. Re-run cell ${record.cell ?? "that defined it"} to recreate it.`,
        );
    }
  }
}

/** An output serialized at the end of its cell (views into live memory, not yet hashed). */
export interface PreparedOutput {
  name: string;
  s: Serialized;
  /** Whether `s` views a live value (re-serialized if it changes during the write). */
  live: boolean;
  value: unknown;
  /**
   * Already in the store as this blob (a lazy step output the worker wrote):
   * recorded by reference, never read or re-serialized. `s` then has the
   * header and size only, no chunks.
   */
  stored?: { sha256: string; size: number };
  /** A blob these bytes are known to differ from (the caller compared them already): not compared again. */
  differsFrom?: string;
}

/** Values at or below this size are hashed before writing (cheap, and an existing blob then costs no write). */
const HASH_FIRST_BELOW = 1 << 20;

/**
 * The SHA-256 an output will be stored under, when it is known before the
 * write and can't change during it: a small value whose bytes are all the
 * serializer's own copy (no part is a view into the value's memory), or
 * bytes serialized ahead (source text). Null otherwise.
 */
function finalHash(p: PreparedOutput): { sha256: string; size: number } | null {
  if (p.stored || p.s.size > HASH_FIRST_BELOW) return null;
  if (p.live && !p.s.header.parts.every((part) => part.role === "v8" || part.role === "text")) return null;
  return sha256Of(p.s.chunks);
}

/**
 * Serializes outputs synchronously (no hashing, no copy of large typed
 * arrays): call it right after the cell, before any other code can change
 * them, and pass the result as `preparedOutputs`.
 */
export function prepareOutputs(values: Record<string, unknown>): PreparedOutput[] {
  return Object.entries(values).map(([name, value]) => {
    checkName(name);
    return { name, s: serializeValue(value), live: true, value };
  });
}

function toIso(t: Date | string): string {
  const d = typeof t === "string" ? new Date(t) : t;
  if (Number.isNaN(d.getTime())) throw new StoreError(`invalid time: ${String(t)}`);
  return d.toISOString();
}

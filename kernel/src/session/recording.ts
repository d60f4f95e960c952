/**
 * Records every cell execution into the datastore (issue 4): code, cell,
 * inputs and outputs as variable versions, logs and rich outputs, status,
 * timing, where it ran and the environment.
 *
 * The kernel calls `record()` right after a cell finishes. Values are
 * serialized synchronously then (views into big typed arrays, no copies, no
 * hashing); hashing and writing happen afterwards, after the execute_reply
 * went out, while the kernel stays busy so no other cell can change the
 * values meanwhile. A storage failure becomes one warning line on the cell's
 * stderr; it never fails the cell.
 *
 * What counts as a cell's outputs, for plain cells (steps say it themselves
 * in `ExecutionMeta.outputs`): the names it declares or assigns, plus the
 * object-valued names it reads, since `arr.push(4)` changes `arr` without
 * assigning it. A read value becomes a new version only when its bytes
 * differ from the version this session last saw. Functions and classes a
 * cell declares are versioned as their TypeScript source.
 *
 * Cell identity: JupyterLab sends the cell id in the execute_request
 * metadata (`cellId`, or `cell_id`). Headless clients (nbclient, papermill)
 * send none; their cells are named `headless-<execution count>`, which is
 * stable across re-runs of one notebook because such clients run every cell
 * in order in a fresh kernel.
 *
 * Notebook identity: JupyterLab's server gives the kernel `JPY_SESSION_NAME`
 * (the notebook's path); without it the kernel's working directory stands in
 * (`NBSCALE_NOTEBOOK` overrides both).
 *
 * Not recorded: cells of line magics only (`%history`, `%restore`, … act on
 * the history itself), `x?` inspection cells and silent executions. Failed
 * cells are recorded with their error, their inputs and no outputs. Set
 * `NBSCALE_RECORD=0` to turn recording off.
 */
import { dirname, isAbsolute, join, resolve, sep } from "node:path";
import { hostname } from "node:os";
import type { JupyterMessage, MessageHeader } from "../protocol/message";
import type { Executor, ExecOutcome } from "./executor";
import { analyzeCellDefinitions } from "../step/analysis";
import { ts } from "../step/typescript";
import { classifyCell } from "../magics";
import {
  Datastore,
  describeType,
  environmentInfo,
  newExecutionId,
  resolveDatastore,
  serializeSourceText,
  serializeValue,
  sha256Of,
  type ArtifactRef,
  type DatastoreLocation,
  type NotebookFilter,
  type ExecutionRecord,
  type PreparedOutput,
  type ValueHeader,
} from "../store";
import { isLazy, type Lazy } from "../client/lazy";
import { LogBuffer } from "./log-buffer";
import { notebookPath } from "../store/location";

export { notebookPath };
import { logLimit } from "../worker/log-limit";
import { RECORD_NOTE_MIN_BYTES, RecordingNote } from "./record-progress";
import { formatMB } from "../magics/units";

const MAX_CAPTURES = 8;

/** The part of the kernel's io the recorder listens to. */
export interface ObservableIo {
  stream(parent: Partial<MessageHeader>, name: "stdout" | "stderr", text: string): void;
  publish(msgType: string, content: unknown, parent: Partial<MessageHeader>, metadata?: Record<string, unknown>): void;
}

export interface CellRun {
  /** The execution id to record under (the kernel names it in notes before recording). */
  id?: string;
  msg: JupyterMessage;
  code: string;
  executionCount: number | null;
  started: Date;
  outcome: ExecOutcome | { ok: false; error: { ename: string; evalue: string; traceback: string[] } };
  silent?: boolean;
}

export interface RecorderOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  executor: Executor;
  /** Writes to the stderr of a cell (bypassing capture). */
  warn: (parent: Partial<MessageHeader>, text: string) => void;
}

interface Capture {
  stdout: LogBuffer;
  stderr: LogBuffer;
  display: unknown[];
  /** Data of the displays kept, against the same limit as each log. */
  displayBytes: number;
  displaysDropped: number;
}

type Role = "out" | "read";

interface Snapshot {
  id: string;
  cell: string;
  code: string;
  executionCount: number | null;
  status: "ok" | "error";
  error: ExecutionRecord["error"];
  started: Date;
  finished: Date;
  outputs: Array<{ p: PreparedOutput; role: Role }>;
  types: Record<string, string>;
  inputs: Record<string, ArtifactRef>;
  step: ExecutionRecord["step"];
  target: string;
  worker: { host?: string; pid?: number | null; id?: string | null };
  memory: { requestedBytes?: number | null; peakBytes?: number | null };
}

/** An execution's own output, when it is not the cell's (a foreach item's). */
interface Logs {
  stdout: string;
  stderr: string;
  display: unknown[];
}

export interface KnownVersion extends ArtifactRef {
  size: number;
}

export class Recorder {
  private currentNotebook: string;
  private lineageCache: Promise<NotebookFilter> | null = null;
  /** The folder `JPY_SESSION_NAME` paths are relative to (null when unknown). */
  private readonly serverRoot: string | null;
  /** The notebook's folder: the default datastore and package-lock.json are there. */
  readonly notebookDir: string;
  readonly location: DatastoreLocation;
  readonly enabled: boolean;
  private ds: Promise<Datastore> | null = null;
  /** The version of each name this session holds (after its last recording or restore). */
  private readonly known = new Map<string, KnownVersion>();
  private readonly captures = new Map<string, Capture>();
  private pending: Promise<void> = Promise.resolve();
  private declCache: { text: string; types: Map<string, string> } | null = null;

  constructor(private readonly options: RecorderOptions) {
    this.currentNotebook = notebookPath(options.env, options.cwd);
    this.notebookDir = this.currentNotebook === resolve(options.cwd) ? this.currentNotebook : dirname(this.currentNotebook);
    this.serverRoot = serverRootOf(options.env, options.cwd);
    this.location = resolveDatastore({ env: options.env, cwd: options.cwd, notebookDir: this.notebookDir });
    this.enabled = !/^(0|false|off|no)$/i.test(options.env.NBSCALE_RECORD ?? "");
  }

  /** Taps the kernel's output so each execution's stdout/stderr/displays are recorded. */
  observe(io: ObservableIo): void {
    const stream = io.stream.bind(io);
    const publish = io.publish.bind(io);
    io.stream = (parent, name, text) => {
      const c = this.captureFor(parent);
      if (c) c[name].append(text);
      stream(parent, name, text);
    };
    io.publish = (msgType, content, parent, metadata) => {
      if (msgType === "display_data" || msgType === "execute_result" || msgType === "error") {
        const c = this.captureFor(parent);
        const body = content as Record<string, unknown>;
        if (c) {
          const bytes = msgType === "error" ? 0 : dataBytes(body.data);
          if (c.displaysDropped > 0 || c.displayBytes + bytes > logLimit(this.options.env)) c.displaysDropped++;
          else {
            c.displayBytes += bytes;
            c.display.push(
              msgType === "error"
                ? { output_type: "error", ename: body.ename, evalue: body.evalue, traceback: body.traceback }
                : { output_type: msgType, data: body.data, metadata: body.metadata ?? {} },
            );
          }
        }
      }
      publish(msgType, content, parent, metadata);
    };
  }

  private captureFor(parent: Partial<MessageHeader>): Capture | null {
    if (!this.enabled || parent.msg_type !== "execute_request" || !parent.msg_id) return null;
    let c = this.captures.get(parent.msg_id);
    if (!c) {
      const limit = logLimit(this.options.env);
      c = { stdout: new LogBuffer(limit), stderr: new LogBuffer(limit), display: [], displayBytes: 0, displaysDropped: 0 };
      this.captures.set(parent.msg_id, c);
      // Late output of long-finished cells must not accumulate.
      if (this.captures.size > MAX_CAPTURES) this.captures.delete(this.captures.keys().next().value as string);
    }
    return c;
  }

  /** The notebook's path now (it follows renames the frontend reports). */
  get notebook(): string {
    return this.currentNotebook;
  }

  /**
   * This notebook across renames: what "recorded by this notebook" means for
   * `%history`, `%restore NAME`, the history sidebar and version reuse.
   */
  lineage(): Promise<NotebookFilter> {
    if (!this.lineageCache) {
      const path = this.currentNotebook;
      this.lineageCache = this.datastore(false).then(
        (ds) => ds.notebooks.lineage(path),
        () => path, // no store yet: nothing recorded under any earlier name either
      );
      this.lineageCache.catch(() => (this.lineageCache = null));
    }
    return this.lineageCache;
  }

  /**
   * The frontend says the notebook is now at `serverPath` (relative to the
   * Jupyter server's root, as JupyterLab names files). Records the rename so
   * that history follows the notebook, also for later kernels.
   * Returns the new absolute path; an explicit NBSCALE_NOTEBOOK wins.
   */
  async renameTo(serverPath: string): Promise<string> {
    if (this.options.env.NBSCALE_NOTEBOOK) return this.currentNotebook;
    const next = resolveServerPath(serverPath, this.serverRoot, this.notebookDir);
    if (next === this.currentNotebook) return next;
    const prev = this.currentNotebook;
    // Queued behind recordings in flight: they belong to the old name.
    const done = this.pending.then(async () => {
      this.currentNotebook = next;
      this.lineageCache = null;
      if (!this.enabled) return;
      const ds = await this.datastore(true);
      await ds.notebooks.record(prev, next);
    });
    this.pending = done.catch(() => undefined);
    await done;
    return next;
  }

  /** The datastore, opened (and created when `create`) on first use. */
  datastore(create = true): Promise<Datastore> {
    if (this.ds) return this.ds;
    const opening = Datastore.open(this.location, { create });
    if (create) {
      this.ds = opening;
      opening.catch(() => (this.ds = null));
    }
    return opening;
  }

  /** Resolves once every recording started so far has committed (or failed). */
  settled(): Promise<void> {
    return this.pending;
  }

  knownVersion(name: string): KnownVersion | undefined {
    return this.known.get(name);
  }

  /** After `%restore`: the session now holds this version. */
  noteRestored(name: string, v: KnownVersion): void {
    this.known.set(name, v);
  }

  /**
   * Records one execution. Call it as soon as the cell's outcome is known:
   * the snapshot is taken synchronously here; the returned promise resolves
   * when the record is committed and never rejects.
   */
  record(run: CellRun): Promise<void> & { large?: boolean } {
    const msgId = run.msg.header.msg_id;
    if (!this.enabled) return Promise.resolve();
    let snap: Snapshot | null;
    try {
      snap = this.snapshot(run);
    } catch (e) {
      this.warnFailure(run.msg, e);
      snap = null;
    }
    if (!snap) {
      this.captures.delete(msgId);
      return Promise.resolve();
    }
    const s = snap;
    let items: Array<{ snap: Snapshot; logs: Logs }> = [];
    try {
      items = this.itemSnapshots(s, run);
    } catch (e) {
      this.warnFailure(run.msg, e);
    }
    const done = this.pending
      // Let the kernel publish the result and reply before the write starts.
      .then(() => new Promise<void>((r) => setImmediate(r)))
      // Items first: the foreach's record, which lists them, commits last.
      .then(async () => {
        for (const item of items) await this.write(item.snap, run.msg, item.logs);
      })
      .then(() => this.write(s, run.msg))
      .catch((e) => this.warnFailure(run.msg, e))
      .finally(() => this.captures.delete(msgId));
    this.pending = done;
    // Writes big enough to show a live line are waited for after the reply; small ones before it.
    const bytes = [s, ...items.map((i) => i.snap)].reduce((n, x) => n + x.outputs.reduce((m, o) => m + (o.p.stored ? 0 : o.p.s.size), 0), 0);
    return Object.assign(done, { large: bytes >= RECORD_NOTE_MIN_BYTES });
  }

  private warnFailure(msg: JupyterMessage, e: unknown): void {
    const why = e instanceof Error ? e.message : String(e);
    this.options.warn(msg.header, `nbscale: this execution was not recorded in ${this.location.path}: ${why.split("\n")[0]}\n`);
  }

  private snapshot(run: CellRun): Snapshot | null {
    if (run.silent) return null;
    const code = run.code;
    if (/^\s*([A-Za-z_$][\w$.]*)\s*\?\s*$/.test(code)) return null;
    let kind: "code" | "step" | "line-magics" | "bad-magic";
    let body = code;
    try {
      const cell = classifyCell(code, {});
      kind = cell.kind;
      if (cell.kind === "step") body = cell.step.body;
    } catch {
      kind = "bad-magic";
    }
    if (kind === "line-magics") return null;

    const { outcome } = run;
    const meta = "meta" in outcome ? outcome.meta : undefined;
    const executor = this.options.executor;
    const outputs: Array<{ p: PreparedOutput; role: Role }> = [];
    const inputs: Record<string, ArtifactRef> = {};
    for (const [n, ref] of Object.entries(meta?.inputs ?? {})) {
      if (typeof ref.version === "number") inputs[n] = { version: ref.version, sha256: ref.sha256 };
    }
    let types: Record<string, string> = { ...(meta?.outputTypes ?? {}) };
    const value = (name: string, v: unknown): PreparedOutput => (isLazy(v) ? lazyOutput(name, v) : { name, s: serializeValue(v), live: true, value: v });

    if (meta?.outputs) {
      for (const [name, v] of Object.entries(meta.outputs)) outputs.push({ p: value(name, v), role: "out" });
    } else if (kind === "code" || (kind === "step" && outcome.ok)) {
      // A step that didn't report its outputs ran in the kernel: analyse it like a plain cell.
      const defs = analyzeCellDefinitions(body);
      const seen = new Set<string>();
      const names: string[] = [];
      for (const d of defs.declarations) {
        if (!d.value || !["value", "function", "class", "enum"].includes(d.kind)) continue;
        if (!outcome.ok) continue;
        seen.add(d.name);
        const last = defs.declarations.filter((x) => x.name === d.name).pop();
        if (last !== d) continue; // the last declaration of a name wins
        if ((d.kind === "function" || d.kind === "class") && d.source) {
          const live = executor.valueOf(d.name);
          outputs.push({ p: { name: d.name, s: serializeSourceText(d.source, describeType(live)), live: false, value: undefined }, role: "out" });
        } else if (executor.has(d.name)) {
          names.push(d.name);
          outputs.push({ p: value(d.name, executor.valueOf(d.name)), role: "out" });
        }
      }
      for (const n of defs.assigns) {
        if (seen.has(n) || !executor.has(n) || executor.isImport(n)) continue;
        seen.add(n);
        const k = this.known.get(n);
        if (k) inputs[n] = { version: k.version, sha256: k.sha256 };
        if (outcome.ok) {
          names.push(n);
          outputs.push({ p: value(n, executor.valueOf(n)), role: "out" });
        }
      }
      for (const r of defs.reads) {
        // Modules an import bound are code, not values: reading `fs.readFileSync` records nothing.
        if (seen.has(r.name) || r.typeOnly || !executor.has(r.name) || executor.isImport(r.name)) continue;
        seen.add(r.name);
        const k = this.known.get(r.name);
        if (k) inputs[r.name] = { version: k.version, sha256: k.sha256 };
        const v = executor.valueOf(r.name);
        // Only objects can change in place; primitives and functions can't change by being read.
        if (outcome.ok && typeof v === "object" && v !== null) {
          names.push(r.name);
          outputs.push({ p: value(r.name, v), role: "read" });
        }
      }
      if (outcome.ok && names.length > 0) types = { ...this.declaredTypes(names), ...types };
    }

    const started = run.started;
    const msgMeta = (run.msg.metadata ?? {}) as Record<string, unknown>;
    const cellId = typeof msgMeta.cellId === "string" ? msgMeta.cellId : typeof msgMeta.cell_id === "string" ? msgMeta.cell_id : null;
    const step = kind === "step" ? stepOf(code, meta) : meta?.step ? { name: meta.step.name, options: meta.step.options } : null;
    return {
      id: run.id ?? newExecutionId(started),
      cell: cellId ?? `headless-${run.executionCount ?? 0}`,
      code,
      executionCount: run.executionCount,
      status: outcome.ok ? "ok" : "error",
      error: outcome.ok ? null : { ename: outcome.error.ename, evalue: outcome.error.evalue, traceback: outcome.error.traceback },
      started,
      finished: new Date(),
      outputs,
      types,
      inputs,
      step,
      target: meta?.target ?? (kind === "step" ? stepTarget(code) : "kernel"),
      worker: meta?.worker
        ? { host: meta.worker.host, pid: meta.worker.pid ?? null, id: meta.worker.id ?? meta.worker.job ?? null }
        : { host: hostname(), pid: process.pid, id: null },
      memory: meta?.memory
        ? { requestedBytes: meta.memory.requestedBytes ?? requested(step), peakBytes: meta.memory.peakBytes ?? null }
        : // A kernel cell's peak is the kernel process's peak resident size so far.
          { requestedBytes: requested(step), peakBytes: process.resourceUsage().maxRSS * 1024 },
    };
  }

  /**
   * A `--foreach` step's items, each an execution of its own: the cell's
   * code, the step's inputs, the item's own values (named `score[3]`, so the
   * versions of `score` stay the session's arrays) and its own output.
   * Item and foreach point at each other through their step options
   * (`foreachItem: {parent, index}` and `foreachItems: [ids]`).
   */
  private itemSnapshots(parent: Snapshot, run: CellRun): Array<{ snap: Snapshot; logs: Logs }> {
    const meta = "meta" in run.outcome ? run.outcome.meta : undefined;
    if (!meta?.items || !parent.step) return [];
    const out: Array<{ snap: Snapshot; logs: Logs }> = [];
    for (const it of [...meta.items].sort((a, b) => a.started.getTime() - b.started.getTime())) {
      const slot = (n: string) => `${n}[${it.index}]`;
      const snap: Snapshot = {
        ...parent,
        id: newExecutionId(it.started),
        status: it.status,
        error: it.error ?? null,
        started: it.started,
        finished: it.finished,
        outputs: Object.entries(it.outputs).map(([n, v]) => ({ p: { name: slot(n), s: serializeValue(v), live: true, value: v }, role: "out" as Role })),
        types: Object.fromEntries(Object.entries(it.outputTypes).map(([n, t]) => [slot(n), t])),
        step: { name: parent.step.name, options: { ...parent.step.options, foreachItem: { parent: parent.id, index: it.index, attempts: it.attempts } } },
        worker: { host: it.worker?.host, pid: it.worker?.pid ?? null, id: it.worker?.id ?? null },
        memory: { requestedBytes: it.memory?.requestedBytes ?? null, peakBytes: it.memory?.peakBytes ?? null },
      };
      out.push({ snap, logs: { stdout: it.stdout, stderr: it.stderr, display: [] } });
    }
    parent.step = { ...parent.step, options: { ...parent.step.options, foreachItems: out.map((o) => o.snap.id) } };
    return out;
  }

  private async write(s: Snapshot, msg: JupyterMessage, logs?: Logs): Promise<void> {
    const ds = await this.datastore(true);
    const prepared: PreparedOutput[] = [];
    for (const { p, role } of s.outputs) {
      if (role === "read" && (await this.unchanged(ds, p))) continue;
      prepared.push(p);
    }
    const captured = this.captures.get(msg.header.msg_id);
    const capture = logs ?? (captured ? logChunks(captured) : undefined);
    const large = prepared.filter((p) => !p.stored && p.s.size >= RECORD_NOTE_MIN_BYTES / 8).map((p) => ({ name: p.name, bytes: p.s.size }));
    const note = large.reduce((n, v) => n + v.bytes, 0) >= RECORD_NOTE_MIN_BYTES ? new RecordingNote(large, this.location.path) : null;
    const rec = await ds
      .recordExecution({
        id: s.id,
        notebook: this.notebook,
        lineage: await this.lineage(),
        cell: s.cell,
        executionCount: s.executionCount,
        code: s.code,
        step: s.step,
        inputs: s.inputs,
        preparedOutputs: prepared,
        outputTypes: Object.fromEntries(prepared.filter((p) => s.types[p.name]).map((p) => [p.name, s.types[p.name]])),
        stdout: capture?.stdout ?? "",
        stderr: capture?.stderr ?? "",
        display: capture?.display ?? [],
        status: s.status,
        error: s.error,
        started: s.started,
        finished: s.finished,
        target: s.target,
        worker: s.worker,
        memory: s.memory,
        environment: environmentInfo(this.notebookDir),
      })
      .catch((e: unknown) => {
        note?.failed();
        throw e;
      });
    note?.done(Object.fromEntries(Object.entries(rec.outputs).map(([n, o]) => [n, o.version])));
    for (const [name, o] of Object.entries(rec.outputs)) this.known.set(name, { version: o.version, sha256: o.sha256, size: o.size });
    // A lazy handle's note named the version it expected; it now holds the recorded one.
    for (const p of prepared) {
      if (isLazy(p.value) && rec.outputs[p.name] && p.value.sha256 === rec.outputs[p.name].sha256) p.value.version = rec.outputs[p.name].version;
    }
  }

  /**
   * Whether a value the cell only read still has the bytes of the version
   * this session knows (or, first time, of the notebook's latest version).
   */
  private async unchanged(ds: Datastore, p: PreparedOutput): Promise<boolean> {
    let ref: KnownVersion | undefined = this.known.get(p.name);
    if (!ref) {
      const latest = await ds.artifacts.latestFrom(p.name, await this.lineage());
      if (latest) ref = { version: latest.version, sha256: latest.sha256, size: latest.size };
    }
    if (!ref || ref.size !== p.s.size) return false;
    // Large values: the known version's BLAKE3 chunk manifest answers ~3x faster than a SHA-256 of the bytes.
    const same = p.stored ? null : await ds.blobs.matches(ref.sha256, ref.size, p.s.chunks);
    if (same === false || (same === null && (p.stored?.sha256 ?? sha256Of(p.s.chunks).sha256) !== ref.sha256)) {
      // The write that follows need not compare them again.
      p.differsFrom = ref.sha256;
      return false;
    }
    this.known.set(p.name, ref);
    return true;
  }

  /**
   * The session's TypeScript type of each name, read from the running
   * declarations (`declare const x: T;`). A `const` with a literal type
   * (`declare const x = 1;`) is widened, so a restore can hold any number.
   */
  declaredTypes(names: string[]): Record<string, string> {
    const text = this.options.executor.declarations;
    if (!this.declCache || this.declCache.text !== text) this.declCache = { text, types: parseDeclaredTypes(text) };
    const out: Record<string, string> = {};
    for (const n of names) {
      const t = this.declCache.types.get(n);
      if (t) out[n] = t;
    }
    return out;
  }
}

/** A capture as the record stores it; a log cut at its limit ends with a note saying how much is missing. */
function logChunks(c: Capture): { stdout: Buffer[]; stderr: Buffer[]; display: unknown[] } {
  const cut = (b: LogBuffer) =>
    b.dropped > 0
      ? [...b.chunks(), Buffer.from(`\n[nbscale: the last ${formatMB(b.dropped)} of this log were not recorded (NBSCALE_LOG_BYTES)]\n`)]
      : b.chunks();
  const display =
    c.displaysDropped > 0
      ? [...c.display, { output_type: "stream", name: "stderr", text: `[nbscale: ${c.displaysDropped} more displays were not recorded (NBSCALE_LOG_BYTES)]\n` }]
      : c.display;
  return { stdout: cut(c.stdout), stderr: cut(c.stderr), display };
}

function dataBytes(data: unknown): number {
  let n = 0;
  for (const v of Object.values((data ?? {}) as Record<string, unknown>)) n += typeof v === "string" ? v.length : JSON.stringify(v ?? null).length;
  return n;
}

/** A lazy handle is recorded as the blob it names (already stored by the worker), not as the handle. */
function lazyOutput(name: string, h: Lazy<unknown>): PreparedOutput {
  const header: ValueHeader = { kind: h.kind, type: h.type, ...(h.class ? { class: h.class } : {}), parts: [] };
  return { name, s: { header, chunks: [], size: h.bytes }, live: false, value: h, stored: { sha256: h.sha256, size: h.bytes } };
}

export function parseDeclaredTypes(dts: string): Map<string, string> {
  const sf = ts.createSourceFile("session.d.ts", dts, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const types = new Map<string, string>();
  for (const st of sf.statements) {
    if (!ts.isVariableStatement(st)) continue;
    for (const d of st.declarationList.declarations) {
      if (!ts.isIdentifier(d.name) || types.has(d.name.text)) continue;
      const t = d.type ? d.type.getText(sf) : d.initializer ? literalType(d.initializer) : null;
      if (t) types.set(d.name.text, t);
    }
  }
  return types;
}

function literalType(e: ts.Expression): string | null {
  if (ts.isPrefixUnaryExpression(e)) return literalType(e.operand);
  if (ts.isNumericLiteral(e)) return "number";
  if (ts.isBigIntLiteral(e)) return "bigint";
  if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return "string";
  if (e.kind === ts.SyntaxKind.TrueKeyword || e.kind === ts.SyntaxKind.FalseKeyword) return "boolean";
  return null;
}

function stepOf(code: string, meta: ExecOutcome["meta"]): ExecutionRecord["step"] {
  if (meta?.step) return { name: meta.step.name, options: meta.step.options };
  try {
    const cell = classifyCell(code, {});
    if (cell.kind === "step") {
      const { name, ...options } = cell.step.options as unknown as { name?: string | null } & Record<string, unknown>;
      return { name: name ?? null, options };
    }
  } catch {
    // a bad %%step line: the error is recorded, the options are not
  }
  return { name: null, options: {} };
}

function requested(step: ExecutionRecord["step"]): number | null {
  const m = step?.options.memory;
  return typeof m === "number" ? m : null;
}

function stepTarget(code: string): string {
  try {
    const cell = classifyCell(code, {});
    if (cell.kind === "step") return String((cell.step.options as unknown as { on?: string }).on ?? "local");
  } catch {
    // fall through
  }
  return "local";
}

/**
 * The Jupyter server's root folder, derived from the kernel's folder and the
 * server-relative `JPY_SESSION_NAME` (the kernel starts in the notebook's
 * folder); null when that can't be known.
 */
export function serverRootOf(env: NodeJS.ProcessEnv, cwd: string): string | null {
  const session = env.JPY_SESSION_NAME;
  if (!session || isAbsolute(session)) return null;
  const rel = dirname(session.split("/").join(sep));
  const here = resolve(cwd);
  if (rel === ".") return here;
  return here.endsWith(sep + rel) ? here.slice(0, here.length - rel.length - 1) || sep : null;
}

/**
 * Absolute path of a notebook the frontend names relative to the server
 * root. Without a known root only a rename within the same folder can be
 * placed (the common case: renaming in the file browser or the title).
 */
export function resolveServerPath(serverPath: string, root: string | null, notebookDir: string): string {
  if (typeof serverPath !== "string" || serverPath.length === 0 || serverPath.length > 4096 || serverPath.includes("\0")) {
    throw new Error(`not a notebook path: ${JSON.stringify(serverPath)}`);
  }
  const parts = serverPath.split("/");
  if (parts.some((p) => p === "..") || isAbsolute(serverPath)) {
    throw new Error(`a notebook path relative to the Jupyter server root is expected, got ${JSON.stringify(serverPath)}`);
  }
  if (root !== null) return join(root, ...parts);
  return join(notebookDir, parts[parts.length - 1]);
}

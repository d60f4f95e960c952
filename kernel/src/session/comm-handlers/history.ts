/**
 * Comm target `nbscale.history`: the JupyterLab history sidebar asks the
 * kernel for this notebook's recorded executions, one execution's detail,
 * and a variable's versions. Everything is read from the datastore (not from
 * the session), so a restarted kernel answers with the same history.
 *
 * Requests and replies (JSON `data` of comm messages; `req` is echoed so the
 * frontend can match replies to requests):
 *
 *   {request: "executions", req, offset?, limit?, variable?}
 *     → {reply: "executions", req, notebook, datastore, offset, total, executions: ExecutionRow[]}
 *   {request: "execution", req, id}
 *     → {reply: "execution", req, execution: ExecutionDetail}
 *   {request: "versions", req, name}
 *     → {reply: "versions", req, name, scope: "notebook"|"all", versions: VersionRow[]}
 *   {request: "variables", req}
 *     → {reply: "variables", req, names: string[]}
 *   any failure → {reply: <request>, req, error: "message"}
 *
 * "This notebook" is the Recorder's notebook path, exactly as it records
 * executions. Paging keeps the sidebar responsive with thousands of
 * executions: only `limit` rows (at most 500) travel per request.
 */
import type { CommManager } from "../comms";
import type { JsonObject } from "../../protocol/message";
import type { Recorder } from "../recording";
import { DatastoreConfigError, inNotebook, type Datastore, type ExecutionRecord, type LogRef, type VersionRecord } from "../../store";

export const HISTORY_TARGET = "nbscale.history";

const MAX_LIMIT = 500;
/** Logs beyond this are cut in the sidebar (the CLI `nbscale show` has them all). */
const LOG_VIEW_CAP = 256 * 1024;

export interface HistoryCommServices {
  recorder: Recorder;
}

export function registerHistoryComm(comms: CommManager, services: HistoryCommServices): void {
  comms.registerTarget(HISTORY_TARGET, (comm) => {
    comm.onMessage = async (data) => {
      const request = String(data.request ?? "");
      const req = typeof data.req === "number" || typeof data.req === "string" ? data.req : null;
      try {
        const body = await answer(services.recorder, request, data);
        comm.send({ reply: request, req, ...body });
      } catch (e) {
        comm.send({ reply: request, req, error: e instanceof Error ? e.message : String(e) });
      }
    };
  });
}

async function openStore(recorder: Recorder): Promise<Datastore | null> {
  await recorder.settled();
  try {
    return await recorder.datastore(false);
  } catch (e) {
    if (e instanceof DatastoreConfigError) return null; // nothing recorded yet
    throw e;
  }
}

async function answer(recorder: Recorder, request: string, data: JsonObject): Promise<JsonObject> {
  switch (request) {
    case "executions":
      return executions(recorder, data);
    case "execution":
      return execution(recorder, String(data.id ?? ""));
    case "versions":
      return versions(recorder, String(data.name ?? ""));
    case "variables": {
      const ds = await openStore(recorder);
      return { names: ds ? await ds.artifacts.names() : [] };
    }
    default:
      throw new Error(`unknown request ${JSON.stringify(request)}; expected executions, execution, versions or variables`);
  }
}

function durationMs(r: ExecutionRecord): number | null {
  const ms = Date.parse(r.finished) - Date.parse(r.started);
  return Number.isFinite(ms) ? ms : null;
}

/** The code's first line that says something (skips blank lines). */
function firstLine(code: string): string {
  const line = code.split("\n").find((l) => l.trim() !== "") ?? "";
  return line.length > 120 ? `${line.slice(0, 117)}…` : line;
}

export function executionRow(r: ExecutionRecord): JsonObject {
  return {
    id: r.id,
    cell: r.cell,
    executionCount: r.execution_count,
    step: r.step ? r.step.name : null,
    isStep: r.step !== null,
    target: r.target,
    status: r.status,
    error: r.error ? `${r.error.ename}: ${r.error.evalue}`.slice(0, 300) : null,
    started: r.started,
    finished: r.finished,
    durationMs: durationMs(r),
    firstLine: firstLine(r.code),
    inputs: Object.fromEntries(Object.entries(r.inputs).map(([n, v]) => [n, v.version])),
    outputs: Object.fromEntries(Object.entries(r.outputs).map(([n, v]) => [n, { version: v.version, newVersion: v.new_version }])),
  };
}

async function executions(recorder: Recorder, data: JsonObject): Promise<JsonObject> {
  const offset = Math.max(0, Math.floor(Number(data.offset ?? 0)) || 0);
  const limit = Math.min(MAX_LIMIT, Math.max(1, Math.floor(Number(data.limit ?? 50)) || 50));
  const variable = typeof data.variable === "string" && data.variable.trim() !== "" ? data.variable.trim() : undefined;
  const base = { notebook: recorder.notebook, datastore: recorder.location.path, offset };
  const ds = await openStore(recorder);
  if (!ds) return { ...base, total: 0, executions: [] };
  // Ids sort by start time; records are cached by the store after the first
  // read, so counting the matches on every page stays cheap.
  const rows: JsonObject[] = [];
  let total = 0;
  const lineage = await recorder.lineage();
  for (const id of await ds.executions.ids()) {
    const r = await ds.executions.get(id);
    if (!r || !inNotebook(lineage, r.notebook, r.started)) continue;
    if (variable !== undefined && !(variable in r.inputs) && !(variable in r.outputs)) continue;
    if (total >= offset && rows.length < limit) rows.push(executionRow(r));
    total++;
  }
  return { ...base, total, executions: rows };
}

async function readLogCapped(ds: Datastore, ref: LogRef, label: string): Promise<{ text: string; size: number; cut: boolean }> {
  const text = await ds.executions.readLog(ref, label);
  return text.length > LOG_VIEW_CAP ? { text: text.slice(0, LOG_VIEW_CAP), size: ref.size, cut: true } : { text, size: ref.size, cut: false };
}

async function execution(recorder: Recorder, id: string): Promise<JsonObject> {
  const ds = await openStore(recorder);
  if (!ds) throw new Error("no executions are recorded yet");
  const r = await ds.executions.find(id);
  const inputs: JsonObject[] = [];
  for (const [name, ref] of Object.entries(r.inputs)) {
    // lineage: which execution produced the version this one read
    const v = await ds.artifacts.readRecord(name, ref.version).catch(() => null);
    inputs.push({
      name,
      version: ref.version,
      sha256: ref.sha256,
      size: v?.size ?? null,
      type: v?.ts_type ?? v?.type ?? null,
      producedBy: v?.execution ?? null,
      producedByCell: v?.cell ?? null,
    });
  }
  const outputs: JsonObject[] = Object.entries(r.outputs).map(([name, o]) => ({
    name,
    version: o.version,
    sha256: o.sha256,
    size: o.size,
    type: o.ts_type ?? o.type,
    newVersion: o.new_version,
  }));
  const display = await ds.executions.readDisplay(r.display, "display outputs").catch(() => []);
  return {
    execution: {
      ...executionRow(r),
      notebook: r.notebook,
      code: r.code,
      stdout: await readLogCapped(ds, r.stdout, "stdout"),
      stderr: await readLogCapped(ds, r.stderr, "stderr"),
      displayCount: display.length,
      errorDetail: r.error ? { ename: r.error.ename, evalue: r.error.evalue } : null,
      stepOptions: (r.step?.options ?? null) as JsonObject | null,
      worker: r.worker,
      memory: { requestedBytes: r.memory.requested_bytes, peakBytes: r.memory.peak_bytes },
      environment: r.environment,
      inputs,
      outputs,
    } as unknown as JsonObject,
  };
}

function versionRow(v: VersionRecord): JsonObject {
  return {
    version: v.version,
    sha256: v.sha256,
    size: v.size,
    type: v.ts_type ?? v.type,
    cell: v.cell,
    execution: v.execution,
    created: v.created,
    notebook: v.notebook,
  };
}

async function versions(recorder: Recorder, name: string): Promise<JsonObject> {
  if (name === "") throw new Error("versions: no variable name given");
  const ds = await openStore(recorder);
  if (!ds) return { name, scope: "notebook", versions: [] };
  let list = await ds.versions(name, { notebook: await recorder.lineage() });
  let scope = "notebook";
  if (list.length === 0) {
    list = await ds.versions(name);
    scope = "all";
  }
  return { name, scope, versions: list.map(versionRow).reverse() };
}

/**
 * `%history` — recent executions of this notebook; `%history NAME` — the
 * versions of one variable. Shown as a small table, text and HTML in one
 * execute_result so both plain frontends and JupyterLab render it.
 */
import type { CellMagics } from "../magic-dispatch";
import { magicFailure } from "../magic-dispatch";
import type { ExecOutcome } from "../executor";
import type { Recorder } from "../recording";
import { DatastoreConfigError, StoreError, type Datastore, type ExecutionRecord, type VersionRecord } from "../../store";

export interface HistoryServices {
  recorder: Recorder;
}

const LIMIT = 20;
const MIMEBUNDLE = Symbol.for("nbscale.mimebundle");

export function register(magics: CellMagics, services: HistoryServices): void {
  magics.onLine("history", async (magic) => {
    const { recorder } = services;
    await recorder.settled();
    let ds: Datastore;
    try {
      ds = await recorder.datastore(false);
    } catch (e) {
      if (e instanceof DatastoreConfigError) return textResult(`No executions recorded yet (datastore: ${recorder.location.path}).`);
      throw e;
    }
    try {
      return magic.name === undefined ? await executions(ds, recorder) : await versions(ds, recorder, magic.name);
    } catch (e) {
      if (e instanceof StoreError) return magicFailure(e.name, e.message);
      throw e;
    }
  });
}

async function executions(ds: Datastore, recorder: Recorder): Promise<ExecOutcome> {
  const records = await ds.history({ notebook: await recorder.lineage(), limit: LIMIT });
  if (records.length === 0) return textResult(`No executions recorded yet for ${recorder.notebook}.`);
  const header = ["ID", "WHEN", "CELL", "TARGET", "STATUS", "TOOK", "OUTPUTS"];
  const rows = records.map((r) => [
    r.id.slice(r.id.lastIndexOf("-") + 1),
    when(r.started),
    cellLabel(r),
    r.target,
    r.status === "error" && r.error ? `error: ${r.error.ename}` : r.status,
    took(r.started, r.finished),
    outputsLabel(r),
  ]);
  const note = `${records.length} most recent execution${records.length === 1 ? "" : "s"} of ${recorder.notebook}, newest first; (x@1) = unchanged, version reused. Details: nbscale show ID`;
  return tableResult(header, rows, note);
}

async function versions(ds: Datastore, recorder: Recorder, name: string): Promise<ExecOutcome> {
  let list: VersionRecord[] = await ds.versions(name, { notebook: await recorder.lineage() });
  let scope = `recorded by ${recorder.notebook}`;
  if (list.length === 0) {
    list = await ds.versions(name);
    scope = "recorded by any notebook in this datastore";
    if (list.length === 0) await ds.resolve(name); // throws, naming close matches
  }
  const current = recorder.knownVersion(name)?.version;
  const header = ["VERSION", "WHEN", "CELL", "TYPE", "SIZE", "SHA256"];
  const rows = list
    .slice()
    .reverse()
    .map((v) => [
      `${v.name}@${v.version}${v.version === current ? " *" : ""}`,
      when(v.created),
      v.cell ? short(v.cell) : "-",
      v.ts_type && !v.ts_type.includes("\n") && v.ts_type.length <= 40 ? v.ts_type : v.type,
      bytes(v.size),
      v.sha256.slice(0, 12),
    ]);
  const note =
    `Versions of ${name} ${scope}, newest first` +
    (current !== undefined ? "; * = the version this session holds" : "") +
    `. Restore one with %restore ${name}@N`;
  return tableResult(header, rows, note);
}

function cellLabel(r: ExecutionRecord): string {
  const count = r.execution_count !== null ? `[${r.execution_count}] ` : "";
  return `${count}${short(r.cell)}`;
}

function outputsLabel(r: ExecutionRecord): string {
  const parts = Object.entries(r.outputs).map(([n, o]) => (o.new_version ? `${n}@${o.version}` : `(${n}@${o.version})`));
  return parts.join(" ") || "-";
}

function short(cell: string): string {
  return cell.length > 12 ? cell.slice(0, 8) + "…" : cell;
}

function when(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return d.toDateString() === new Date().toDateString() ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function took(start: string, end: string): string {
  const ms = Date.parse(end) - Date.parse(start);
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function textResult(text: string): ExecOutcome {
  return { ok: true, hasValue: true, value: bundle({ "text/plain": text }) };
}

function tableResult(header: string[], rows: string[][], note: string): ExecOutcome {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  const text = [line(header), ...rows.map(line), "", note].join("\n");
  const html =
    `<table class="nbscale-history">` +
    `<thead><tr>${header.map((h) => `<th style="text-align:left">${esc(h)}</th>`).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td style="text-align:left;font-family:var(--jp-code-font-family,monospace)">${esc(c)}</td>`).join("")}</tr>`).join("")}</tbody>` +
    `</table><p style="font-size:smaller">${esc(note)}</p>`;
  return { ok: true, hasValue: true, value: bundle({ "text/plain": text, "text/html": html }) };
}

/** A value whose execute_result is exactly this bundle (see session/format.ts). */
function bundle(data: Record<string, string>): object {
  return { [MIMEBUNDLE]: () => data };
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);
}

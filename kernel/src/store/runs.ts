/**
 * Flow runs in the datastore. Like everything else there, run records are
 * written once and never changed:
 *
 *   runs/<RUN>/start.json          what ran: flow file, its source blob, options, resumed_from
 *   runs/<RUN>/steps/<STEP>.json   one per finished step (succeeded, failed, skipped or reused)
 *   runs/<RUN>/end.json            the commit marker: final status
 *
 * A run without end.json is still running, or was interrupted (its runner
 * process is gone); either way its finished steps can be resumed from.
 * Logs are blobs (content-addressed like artifacts) referenced from the
 * step record. Artifacts are the SHA-256 of their serialized bytes, the
 * same blobs the execution records point at.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { StorageBackend } from "./backend";
import { BlobStore } from "./blobs";
import { closeNames, StoreError } from "./errors";

export const RUNS_PREFIX = "runs/";
const RUN_ID_RE = /^run-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$/;

export type RunStatus = "running" | "interrupted" | "succeeded" | "failed";
export type StepStatus = "succeeded" | "failed" | "skipped";

export interface RunStart {
  format: 1;
  id: string;
  flow: { path: string; name: string; source_sha256: string };
  started: string;
  options: { on: string | null; max_workers: number };
  resumed_from: string | null;
  /** Steps in run order, with the steps each reads from. */
  steps: Array<{ name: string; needs: string[] }>;
  runner: { host: string; pid: number };
}

export interface StepError {
  kind: "error" | "oom" | "timeout" | "upstream" | "unavailable";
  /** The failure's name, as a cell's error names it (`StepOutOfMemory`, `WorkerDied`, `TypeError`); absent in older records. */
  name?: string;
  message: string;
  /** Memory advice, for `kind: "oom"`. */
  advice?: string;
}

export interface StepRecord {
  format: 1;
  run: string;
  step: string;
  status: StepStatus;
  /** False when the step's result was reused from an earlier run without running it. */
  executed: boolean;
  reused_from: string | null;
  code_sha256: string;
  /** Parameter → the SHA-256 of the value it received (and where it came from). */
  inputs: Record<string, { sha256: string; from: string }>;
  /** Returned name → SHA-256 of its serialized bytes. */
  artifacts: Record<string, string>;
  /** Returned name → variable version in the datastore. */
  versions: Record<string, number>;
  /** The execution record of the step (see `nbscale show`). */
  execution: string | null;
  target: string;
  attempts: number;
  started: string | null;
  finished: string | null;
  error: StepError | null;
  log: { sha256: string; size: number } | null;
  worker: { host: string; pid: number | null } | null;
}

export interface RunEnd {
  format: 1;
  id: string;
  status: "succeeded" | "failed";
  finished: string;
}

export interface RunView {
  id: string;
  start: RunStart;
  steps: Record<string, StepRecord>;
  end: RunEnd | null;
  status: RunStatus;
}

export class UnknownRunError extends StoreError {
  constructor(
    readonly id: string,
    readonly known: string[],
  ) {
    const near = closeNames(id, known, 3);
    const recent = known.slice(-5).reverse();
    super(
      `no run ${id} in this datastore.` +
        (near.length ? ` Did you mean ${near.join(", ")}?` : "") +
        (recent.length ? ` Recent runs: ${recent.join(", ")} (see \`nbscale runs\`).` : " No runs were recorded yet."),
    );
    this.name = "UnknownRunError";
  }
}

export function newRunId(now: Date = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").slice(0, 15); // 20250102T030405
  return `run-${t}-${randomBytes(3).toString("hex")}`;
}

export function isRunId(id: string): boolean {
  return RUN_ID_RE.test(id);
}

function stepKey(run: string, step: string): string {
  return `${RUNS_PREFIX}${run}/steps/${step}.json`;
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v, null, 1) + "\n", "utf8");

export class RunStore {
  readonly blobs: BlobStore;

  constructor(readonly backend: StorageBackend) {
    this.blobs = new BlobStore(backend);
  }

  async begin(start: Omit<RunStart, "format" | "runner">): Promise<RunStart> {
    const rec: RunStart = { format: 1, ...start, runner: { host: hostname(), pid: process.pid } };
    if (!(await this.backend.createExclusive(`${RUNS_PREFIX}${rec.id}/start.json`, json(rec)))) {
      throw new StoreError(`run ${rec.id} already exists`);
    }
    return rec;
  }

  async putStep(rec: StepRecord): Promise<void> {
    if (!(await this.backend.createExclusive(stepKey(rec.run, rec.step), json(rec)))) {
      throw new StoreError(`step ${rec.step} of run ${rec.run} was already recorded`);
    }
  }

  async finish(id: string, status: RunEnd["status"]): Promise<RunEnd> {
    const rec: RunEnd = { format: 1, id, status, finished: new Date().toISOString() };
    await this.backend.createExclusive(`${RUNS_PREFIX}${id}/end.json`, json(rec));
    return rec;
  }

  async putLog(text: string): Promise<{ sha256: string; size: number }> {
    const put = await this.blobs.put([Buffer.from(text, "utf8")]);
    return { sha256: put.sha256, size: put.size };
  }

  async readLog(ref: { sha256: string }, label: string): Promise<string> {
    return (await this.blobs.read(ref.sha256, label)).toString("utf8");
  }

  /** Run ids, oldest first (ids sort by start time). */
  async ids(): Promise<string[]> {
    const ids = new Set<string>();
    for await (const key of this.backend.list(RUNS_PREFIX)) {
      const m = /^runs\/([^/]+)\/start\.json$/.exec(key);
      if (m && isRunId(m[1])) ids.add(m[1]);
    }
    return [...ids].sort();
  }

  /** A run by id or unique id prefix. */
  async get(idOrPrefix: string): Promise<RunView> {
    const ids = await this.ids();
    let id = ids.find((i) => i === idOrPrefix);
    if (!id) {
      const matches = ids.filter((i) => i.startsWith(idOrPrefix));
      if (matches.length > 1) throw new StoreError(`run id prefix ${idOrPrefix} is ambiguous: ${matches.slice(0, 5).join(", ")}`);
      id = matches[0];
    }
    if (!id) throw new UnknownRunError(idOrPrefix, ids);
    return this.read(id);
  }

  async read(id: string): Promise<RunView> {
    const startBuf = await this.backend.get(`${RUNS_PREFIX}${id}/start.json`);
    if (!startBuf) throw new UnknownRunError(id, await this.ids());
    const start = JSON.parse(startBuf.toString("utf8")) as RunStart;
    const steps: Record<string, StepRecord> = {};
    for await (const key of this.backend.list(`${RUNS_PREFIX}${id}/steps/`)) {
      const buf = await this.backend.get(key);
      if (!buf) continue;
      const rec = JSON.parse(buf.toString("utf8")) as StepRecord;
      steps[rec.step] = rec;
    }
    const endBuf = await this.backend.get(`${RUNS_PREFIX}${id}/end.json`);
    const end = endBuf ? (JSON.parse(endBuf.toString("utf8")) as RunEnd) : null;
    return { id, start, steps, end, status: end ? end.status : runnerAlive(start) ? "running" : "interrupted" };
  }

  async list(): Promise<RunView[]> {
    const out: RunView[] = [];
    for (const id of await this.ids()) out.push(await this.read(id));
    return out;
  }
}

function runnerAlive(start: RunStart): boolean {
  if (start.runner.host !== hostname()) return true; // can't tell from here; assume it is
  try {
    process.kill(start.runner.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * `%%step NAME --foreach EXPR [--parallel N]`: runs the step body once per
 * element of EXPR on the local worker pool (or as one scheduler array job:
 * `--on slurm`, backends/slurm/array.ts; `--on batch`, backends/batch/array.ts),
 * at most N at a time, and joins
 * the results in item order: every value the body declares comes back as an
 * array (`score[i]` is item i's `score`), typed `T[]` from the body's own
 * checked type `T`.
 *
 * Items fail independently: a failed item leaves `undefined` in its slot
 * (the arrays are then typed `(T | undefined)[]`), the others' results are
 * kept and recorded, and the cell fails at the end listing each failed
 * index with its error. `--retries` applies to each item on its own, with
 * the same rule as a single step (a worker death or a timeout is retried; an
 * exception or an out-of-memory would only happen again).
 *
 * Program shape: the packaged step with two more inputs (the item and its
 * index) handed to the body's inner function as parameters `item`, `index`:
 * the body sees them, shipped functions from earlier cells still see the
 * notebook's own `item` if there is one (see analysis.ts).
 */
import * as os from "node:os";
import type { CellMagic } from "../magics";
import type { ExecOutcome } from "../session/executor";
import type { ExecutionMeta, ItemExecution } from "../session/execution-meta";
import { interruptedError, heading, type CellError } from "../session/errors";
import { UnserializableValueError } from "../store/errors";
import { decodeValues, encodeValues, type EncodedValues } from "../worker/codec";
import { encodeStepInputs, stepDeclarations } from "./lazy";
import type { OutputStub, StepEvent } from "../worker/events";
import { releasePieces } from "../worker/spill";
import { WorkerStartError, type TaskResult } from "../backends/local-pool";
import type { AnalyzeStepOptions, StepAnalysis } from "./analysis";
import { declaredTypes, packageStep, shippedCode, type StepPackage } from "./package";
import { mapRemoteError } from "./remote-error";
import { cellError, compileError, failureError, withAttempts } from "./failures";
import { retryDecision, type RetryDecision } from "./retry";
import { shortReason, workerEnded } from "../backends/step-failure";
import { elementType, evaluateItems, implicitDeclarations } from "./foreach-input";
import { ForeachProgress } from "./foreach-progress";
import { ItemOutput } from "./foreach-output";
import type { StepHost } from "./dispatch";
import { runSlurmArray } from "../backends/slurm/array";
import type { BatchBackend } from "../backends/batch/run";
import { StepFailed } from "../backends/step-backend";
import { MAX_ARRAY } from "../backends/batch/submit";
import type { ElementOutcome } from "../backends/remote/array";

const ITEM = "__nbscale_item";
const INDEX = "__nbscale_index";
export const IMPLICIT: AnalyzeStepOptions = { implicit: ["item", "index"] };

export interface ForeachDeps {
  host: StepHost;
  step: CellMagic;
  /** The step's name (the runner's naming of unnamed steps). */
  name: string;
  cellId: string | undefined;
  analyze(body: string, options: AnalyzeStepOptions): StepAnalysis;
  /** Binds values (and the body's type/code declarations) into the session. */
  bind(values: Map<string, unknown>, types: Record<string, string>): Promise<ExecOutcome>;
  interrupted(): boolean;
  /** Where a worker's events go in the running cell. */
  publish(e: StepEvent): void;
  /** Aborted on interrupt: `--on slurm` scancels the array job, `--on batch` terminates it. */
  signal?: AbortSignal;
  /** The kernel's Batch backend (it keeps registered job definitions), for `--on batch`. */
  batch?(): Promise<BatchBackend>;
}

interface ItemRun {
  exec: ItemExecution;
  values: Map<string, unknown> | null;
  stubs: OutputStub[];
}

export async function runForeach(d: ForeachDeps): Promise<ExecOutcome> {
  const { host, step, name } = d;
  const { executor } = host;
  const o = step.options;
  const expr = o.foreach!;
  const fail = (error: CellError): ExecOutcome => ({ ok: false, error });
  if (o.on === "kernel") {
    return fail(
      cellError("StepOptionUnsupported", `step \`${name}\`: --foreach fans out over workers; it can't run --on kernel. Use --on local (the default).`),
    );
  }
  // Local pool or a scheduler's array job: never run a remote foreach quietly on this machine.
  if (o.on !== "local" && o.on !== "slurm" && !(o.on === "batch" && d.batch)) {
    return fail(
      cellError("StepTargetUnavailable", `step \`${name}\`: --foreach with --on ${o.on} is not available in this build yet; use --on local (the default)`),
    );
  }

  const listed = await evaluateItems(executor, expr, name);
  if (!listed.ok) return fail(listed.error);
  const items = listed.items;

  // Type-check the body with `item` typed as one element: a step never starts with a compile error.
  const itemType = elementType(executor, expr);
  // Lazy<T> names are checked as T: workers read their values from the datastore (step/lazy.ts).
  const checked = executor.check(step.body + implicitDeclarations(itemType), stepDeclarations(executor));
  if (checked.diagnostics.length > 0) return fail(compileError(step.body, checked.diagnostics, step.bodyLineOffset));

  const analysis = d.analyze(step.body, IMPLICIT);
  for (const u of analysis.unresolved) {
    // Names in the session that no recorded cell declares (restored or bound values) still travel as data.
    if (u.space === "value" && u.usedBy.step && executor.has(u.name) && !analysis.inputs.some((i) => i.name === u.name)) {
      analysis.inputs.push({ name: u.name, cellId: "session", cellIndex: -1, typeOnly: false });
    }
  }
  for (const c of analysis.conflicts) process.stderr.write(`warning: step \`${name}\`: ${c.message}\n`);
  const shared = analysis.inputs.filter((i) => !i.typeOnly).map((i) => i.name);
  analysis.inputs.push({ name: ITEM, cellId: "foreach", cellIndex: -1, typeOnly: false }, { name: INDEX, cellId: "foreach", cellIndex: -1, typeOnly: false });
  const pkg = withItemParameters(packageStep(step.body, analysis, host.cells, host.executor.localModules(shippedCode(step.body, analysis))));
  const outputs = pkg.valueOutputs;

  const refused = (e: unknown, which: string): ExecOutcome => {
    if (!(e instanceof UnserializableValueError)) throw e;
    return fail(cellError("UnserializableInput", `step \`${name}\` was not started: ${which}${e.message}`));
  };
  let common: EncodedValues;
  try {
    common = encodeStepInputs(shared, executor);
  } catch (e) {
    return refused(e, "");
  }
  // Every item is checked before any runs: a list that can't travel fails at once, naming the item.
  const perItem: EncodedValues[] = [];
  for (const [index, item] of items.entries()) {
    try {
      perItem.push(
        encodeValues(
          [
            [ITEM, item],
            [INDEX, index],
          ],
          true,
        ),
      );
    } catch (e) {
      return refused(e, `item ${index} of \`${expr}\`: `);
    }
  }

  if (o.on === "batch" && items.length > MAX_ARRAY) {
    return fail(
      cellError(
        "StepResourceError",
        `step \`${name}\`: \`--foreach ${expr}\` has ${items.length} items; an AWS Batch array job has at most ${MAX_ARRAY}. Split the list over several steps, or batch several items into one`,
      ),
    );
  }
  const itemTypes = declaredTypes(checked.declOutput ?? "", outputs);
  const meta: ExecutionMeta = {
    step: { name, options: { ...o } as unknown as Record<string, unknown> },
    target: o.on,
    memory: { requestedBytes: o.memory },
    inputs: {},
  };
  for (const n of shared) {
    const v = host.knownVersion?.(n);
    if (v) meta.inputs![n] = { version: v.version, sha256: v.sha256 };
  }

  const progress = new ForeachProgress(
    { step: name, target: o.on, memory: { requestedBytes: o.memory ?? null }, ...(o.retries ? { retries: o.retries } : {}) },
    items.length,
  );
  const counts = { done: 0, running: 0, failed: 0 };
  const runs: Array<ItemRun | undefined> = new Array(items.length);
  let next = 0;
  let infrastructure: CellError | null = null;
  const array = o.on === "slurm" || o.on === "batch";
  if (array) {
    // One array job; the scheduler decides how many run at once, so no lanes here.
    try {
      if (o.on === "batch" && o.parallel !== undefined) {
        process.stderr.write(
          `warning: step \`${name}\`: --parallel is not applied to AWS Batch arrays; the queue's compute environments (their maxvCpus) decide how many items run at once\n`,
        );
      }
      if (items.length > 0) await runOnArray(d, pkg, common, perItem, runs, progress);
    } catch (e) {
      if (!(e instanceof StepFailed)) {
        progress.finish("failed", { kind: "infrastructure", message: e instanceof Error ? e.message : String(e) });
        throw e;
      }
      infrastructure = failureError(e.failure);
    }
  }
  const parallel = array ? 0 : Math.max(1, Math.min(items.length, o.parallel ?? defaultParallel(host.pool().totalMemory, o.memory)));
  const lane = async () => {
    while (next < items.length && !d.interrupted() && !infrastructure) {
      const index = next++;
      counts.running++;
      progress.set(counts);
      try {
        runs[index] = await runItem(d, pkg, index, common, perItem[index]);
      } catch (e) {
        if (!(e instanceof WorkerStartError)) throw e;
        infrastructure = cellError("WorkerStartError", `step \`${name}\`: ${e.message}`);
      } finally {
        counts.running--;
      }
      if (runs[index]?.exec.status === "ok") counts.done++;
      else if (runs[index]) counts.failed++;
      progress.set(counts);
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, lane));
  } catch (e) {
    progress.finish("failed", { kind: "infrastructure", message: e instanceof Error ? e.message : String(e) });
    throw e;
  }

  const finished = runs.filter((r): r is ItemRun => r !== undefined);
  const failed = finished.filter((r) => r.exec.status === "error");
  const incomplete = failed.length > 0 || finished.length < items.length;
  for (const r of finished) {
    r.exec.outputTypes = Object.fromEntries(
      Object.keys(r.exec.outputs)
        .filter((n) => itemTypes[n])
        .map((n) => [n, itemTypes[n]]),
    );
  }
  meta.items = finished.map((r) => r.exec);
  meta.attempts = Math.max(1, ...finished.map((r) => r.exec.attempts));

  // The join: one array per declared name, in item order; a slot without a result stays undefined.
  const arrays = new Map<string, unknown>();
  for (const n of outputs) {
    arrays.set(
      n,
      items.map((_, i) => runs[i]?.values?.get(n)),
    );
  }
  const types: Record<string, string> = {};
  for (const n of outputs) types[n] = arrayType(itemTypes[n] ?? "any", incomplete);
  warnStubs(name, finished);
  const bound = await d.bind(arrays, types);
  meta.outputTypes = types;
  if (bound.ok) meta.outputs = Object.fromEntries(arrays);

  if (d.interrupted()) {
    progress.finish("cancelled");
    return { ok: false, error: interruptedError(), meta };
  }
  if (infrastructure) {
    progress.finish("failed", { kind: "infrastructure", message: (infrastructure as CellError).evalue });
    return { ok: false, error: infrastructure, meta };
  }
  if (!bound.ok) {
    progress.finish("failed", { kind: "exception", message: bound.error.evalue });
    return { ...bound, meta };
  }
  if (failed.length > 0) {
    const error = failuresError(name, expr, items.length, failed, outputs);
    progress.finish("failed", { kind: "exception", message: error.evalue });
    return { ok: false, error, meta };
  }
  if (items.length === 0) {
    const names = outputs.length > 0 ? `; ${outputs.map((n) => `\`${n}\``).join(", ")} ${outputs.length === 1 ? "is an empty array" : "are empty arrays"}` : "";
    process.stdout.write(`step \`${name}\`: \`--foreach ${expr}\` is empty: nothing ran${names}\n`);
  }
  progress.finish("succeeded");
  host.cells.push({ id: d.cellId ?? name, code: step.body });
  return { ok: true, hasValue: false, meta };
}

/** Without --parallel: as many items at once as there are cores, and as their --memory fits in the machine. */
export function defaultParallel(totalMemory: number, memory: number | undefined): number {
  const cores = os.availableParallelism();
  return memory === undefined ? cores : Math.max(1, Math.min(cores, Math.floor(totalMemory / memory)));
}

/** `number` → `number[]`; a compound type is wrapped so `[]` applies to all of it. */
export function arrayType(t: string, withHoles: boolean): string {
  const elem = withHoles && t !== "any" ? `${t} | undefined` : t;
  return /^[\w$.]+(<[^()]*>)?$/.test(elem) ? `${elem}[]` : `Array<${elem}>`;
}

/**
 * The packaged program runs the body as `(async function () {…})()`; for a
 * foreach it becomes `(async function (item, index) {…})(__nbscale_item,
 * __nbscale_index)`: same lines, so stack traces still map to the cell.
 */
function withItemParameters(pkg: StepPackage): StepPackage {
  const lines = pkg.program.source.split("\n");
  const open = lines.indexOf("return await (async function () {");
  const close = lines.lastIndexOf("})();");
  if (open < 0 || close < open) throw new Error("nbscale: unexpected step program layout (package.ts changed?)");
  lines[open] = "return await (async function (item, index) {";
  lines[close] = `})(${ITEM}, ${INDEX});`;
  return { ...pkg, program: { ...pkg.program, source: lines.join("\n") }, valueOutputs: pkg.valueOutputs.filter((n) => n !== ITEM && n !== INDEX) };
}

async function runItem(d: ForeachDeps, pkg: StepPackage, index: number, common: EncodedValues, mine: EncodedValues): Promise<ItemRun> {
  const { name, step } = d;
  const o = step.options;
  const attempts = 1 + (o.retries ?? 0);
  const label = `${name}[${index}]`;
  const out = new ItemOutput(index, d.publish);
  const started = new Date();
  const inputs = { specs: [...common.specs, ...mine.specs], frames: [...common.frames, ...mine.frames] };
  let result: TaskResult | null = null;
  let attempt = 0;
  let memory = o.memory;
  for (attempt = 1; attempt <= attempts; attempt++) {
    result = await d.host.pool().run({
      step: label,
      attempt,
      memory,
      env: { ...o.env, NBSCALE_FOREACH_INDEX: String(index) },
      timeoutMs: o.timeout,
      program: pkg.program,
      inputs,
      onEvent: (e) => out.onEvent(e),
    });
    if (result.status !== "died") break;
    const failed = workerEnded(label, { ...result, pid: result.worker.pid }, memory, o.timeout);
    const decision = retryDecision(failed, { attempt, attempts, memory, stopping: d.interrupted(), maxMemory: d.host.pool().totalMemory });
    if (!decision.retry) break;
    process.stderr.write(`step \`${label}\`: attempt ${attempt} of ${attempts} failed (${shortReason(failed)}); ${decision.notice} on a fresh worker\n`);
    memory = decision.memory ?? memory;
  }
  out.flush();
  attempt = Math.min(attempt, attempts);
  const r = result!;
  if (attempt > 1 && r.status === "done") process.stderr.write(`step \`${label}\` succeeded on attempt ${attempt} of ${attempts}\n`);
  return await itemRun(d, pkg, index, r, out, {
    started,
    memory,
    attempts: attempt,
    worker: { id: r.worker.id, pid: r.worker.pid, host: os.hostname() },
    where: `worker ${r.worker.id}, pid ${r.worker.pid}`,
  });
}

/** One item's TaskResult (pool or Slurm element) as its execution record and decoded values. */
async function itemRun(
  d: ForeachDeps,
  pkg: StepPackage,
  index: number,
  r: TaskResult,
  out: ItemOutput,
  how: { started: Date; attempts: number; worker: ItemExecution["worker"]; where: string; memory?: number },
): Promise<ItemRun> {
  const { step } = d;
  const o = step.options;
  const exec: ItemExecution = {
    index,
    status: "error",
    started: how.started,
    finished: new Date(),
    outputs: {},
    outputTypes: {},
    worker: how.worker,
    memory: { requestedBytes: how.memory ?? o.memory, peakBytes: r.peakRss || undefined },
    attempts: how.attempts,
    stdout: out.stdout,
    stderr: out.stderr,
  };
  if (r.status === "failed") {
    exec.error = mapRemoteError(r.error, pkg, step.body, step.bodyLineOffset, `in item ${index}, ${how.where}`);
    return { exec, values: null, stubs: [] };
  }
  if (r.status === "died") {
    exec.error = failureError(workerEnded(`${d.name}[${index}]`, { ...r, pid: r.worker.pid }, how.memory ?? o.memory, o.timeout));
    return { exec, values: null, stubs: [] };
  }
  const values = await decodeValues(r.outputs, r.pieces, (cls) => {
    const v = d.host.executor.valueOf(cls);
    return typeof v === "function" ? v : undefined;
  }).finally(() => releasePieces(r.pieces));
  exec.status = "ok";
  exec.outputs = Object.fromEntries(values);
  return { exec, values, stubs: r.stubs };
}

/**
 * `--on slurm` / `--on batch`: all items as one array job
 * (backends/slurm/array.ts, backends/batch/array.ts); fills `runs` in item
 * order. A scheduler's ending without a result is the item's error. On
 * Slurm, --retries runs the items whose jobs died under them again as a new
 * array of just those items, up to the count; on Batch it is each child's
 * retryStrategy.
 */
async function runOnArray(
  d: ForeachDeps,
  pkg: StepPackage,
  common: EncodedValues,
  perItem: EncodedValues[],
  runs: Array<ItemRun | undefined>,
  progress: ForeachProgress,
): Promise<void> {
  const o = d.step.options;
  const outs = perItem.map((_, i) => new ItemOutput(i, d.publish));
  const shared = {
    step: d.name,
    memory: o.memory,
    cpu: o.cpu,
    gpu: o.gpu,
    timeoutMs: o.timeout,
    env: o.env ?? {},
    program: pkg.program,
    common,
    perItem,
    signal: d.signal ?? new AbortController().signal,
    onSubmitted: (job: string) => progress.setJob(job),
    onCounts: (c: { done: number; running: number; failed: number }) => progress.set(c),
  };
  const onItem = (i: number, e: StepEvent) => outs[i].onEvent(e);
  if (o.on === "slurm") {
    // --retries: the items the retry policy says to run again (a death under them, a timeout, out of memory with
    // more memory) run again, as a new array of just those, with the most memory any of them was told to ask for.
    const attempts = 1 + (o.retries ?? 0);
    const tries = new Array<number>(perItem.length).fill(1);
    let pending: number[] | null = null; // null: every item, first round
    let memory = o.memory;
    for (let attempt = 1; pending === null || pending.length > 0; attempt++) {
      const round: number[] | null = pending;
      const before = { done: runs.filter((r) => r?.exec.status === "ok").length, failed: runs.filter((r) => r?.exec.status === "error").length };
      const r = await runSlurmArray({
        ...shared,
        memory,
        ...(round ? { perItem: round.map((i) => perItem[i]), items: round, attempt: { n: attempt, of: attempts } } : {}),
        onCounts: (c) => progress.set({ done: before.done + c.done, running: c.running, failed: before.failed + c.failed }),
        partition: o.partition,
        parallel: o.parallel,
        cwd: d.host.cwd,
        onEvent: onItem,
      });
      for (const el of r.elements) tries[el.index] = attempt;
      const decisions = new Map<ElementOutcome, RetryDecision>();
      for (const el of r.elements) {
        if ("failure" in el) decisions.set(el, retryDecision(el.failure, { attempt, attempts, memory, stopping: d.interrupted() }));
      }
      const again = r.elements.filter((el) => decisions.get(el)?.retry);
      await collectElements(
        d,
        pkg,
        r.elements.filter((el) => !again.includes(el)),
        outs,
        runs,
        (el) => `Slurm job ${el.job}${el.host ? ` on ${el.host}` : ""}`,
        tries,
      );
      for (const el of again) {
        const decision = decisions.get(el)!;
        if (!("failure" in el) || !decision.retry) continue;
        process.stderr.write(`step \`${d.name}[${el.index}]\`: attempt ${attempt} of ${attempts} failed (${shortReason(el.failure)}); ${decision.notice}\n`);
        if (decision.memory !== undefined && (memory === undefined || decision.memory > memory)) memory = decision.memory;
      }
      pending = again.map((el) => el.index);
    }
  } else {
    const r = await (await d.batch!()).runArray({ ...shared, retries: o.retries, queue: o.queue, image: o.image, onEvent: d.publish, onItemEvent: onItem });
    await collectElements(d, pkg, r.elements, outs, runs, (el) => `AWS Batch job ${el.job}`);
  }
}

/** An array job's elements as the foreach's item runs (their output flushed, their values decoded). */
async function collectElements(
  d: ForeachDeps,
  pkg: StepPackage,
  elements: ElementOutcome[],
  outs: ItemOutput[],
  runs: Array<ItemRun | undefined>,
  where: (el: ElementOutcome) => string,
  /** Attempts each item took, where the kernel re-ran items (Slurm); else the element's own count. */
  tries?: number[],
): Promise<void> {
  const o = d.step.options;
  for (const el of elements) {
    const out = outs[el.index];
    out.flush();
    const worker = { id: el.job, host: el.host };
    if ("failure" in el) {
      const exec: ItemExecution = {
        index: el.index,
        status: "error",
        error: tries ? withAttempts(failureError(el.failure), tries[el.index], 1 + (o.retries ?? 0)) : failureError(el.failure),
        started: el.started,
        finished: el.finished,
        outputs: {},
        outputTypes: {},
        worker,
        memory: { requestedBytes: o.memory, peakBytes: el.peakRss || undefined },
        attempts: tries?.[el.index] ?? 1,
        stdout: out.stdout,
        stderr: out.stderr,
      };
      runs[el.index] = { exec, values: null, stubs: [] };
    } else {
      const run = await itemRun(d, pkg, el.index, el.result, out, {
        started: el.started,
        attempts: tries?.[el.index] ?? el.result.attempts ?? 1,
        worker,
        where: where(el),
      });
      run.exec.finished = el.finished;
      runs[el.index] = run;
    }
  }
}

/** An output that could not come back from any item is reported once, not once per item. */
function warnStubs(name: string, runs: ItemRun[]): void {
  const seen = new Set<string>();
  for (const r of runs) {
    for (const s of r.stubs) {
      if (seen.has(s.name)) continue;
      seen.add(s.name);
      process.stderr.write(`warning: step \`${name}\`: \`${s.name}\` (${s.type}) stays in the workers (its slots are undefined): ${s.reason}\n`);
    }
  }
}

function failuresError(name: string, expr: string, total: number, failed: ItemRun[], outputs: string[]): CellError {
  const indices = failed.map((r) => r.exec.index);
  const kept = total - failed.length;
  const names = outputs.length > 0 ? ` (${outputs.map((n) => `\`${n}\``).join(", ")}; failed slots are undefined)` : "";
  const evalue =
    `${failed.length} of ${total} items of step \`${name}\` (--foreach ${expr}) failed: ${indices.length === 1 ? "index" : "indices"} ${indices.join(", ")}; ` +
    `the results of the other ${kept} are in the session${names}`;
  const traceback = [heading("ForeachItemsFailed", evalue)];
  for (const r of failed) {
    const e = r.exec.error!;
    const attempts = r.exec.attempts > 1 ? ` (after ${r.exec.attempts} attempts)` : "";
    traceback.push("", `item ${r.exec.index}${attempts}:`, ...e.traceback.map((l) => `  ${l}`));
  }
  return { ename: "ForeachItemsFailed", evalue, traceback };
}

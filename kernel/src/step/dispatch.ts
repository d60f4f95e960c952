/**
 * Runs a `%%step` cell: type-checks the body against the session, works out
 * what it needs (analysis.ts), refuses inputs that can't travel, runs the
 * packaged program on its target's backend (step/backends.ts: local workers,
 * the kernel itself, Slurm, Batch) with the one retry policy (retry.ts),
 * streams its output into the cell, and binds the names it declares back
 * into the session with their types.
 */
import * as os from "node:os";
import type { Executor, ExecOutcome, Binding } from "../session/executor";
import type { CellMagic } from "../magics";
import type { ExecutionMeta } from "../session/execution-meta";
import { activeStepStatus } from "../session/step-status";
import { interruptedError, type CellError } from "../session/errors";
import { UnserializableValueError } from "../store/errors";
import { analyzeCellDefinitions, analyzeStep, type AnalyzeStepOptions, type HistoryCell } from "./analysis";
import { runForeach } from "./foreach";
import { declaredTypes, packageStep, shippedCode } from "./package";
import { mapRemoteError } from "./remote-error";
import { cellError, compileError, failureError, withAttempts } from "./failures";
import { retryDecision } from "./retry";
import { Backends } from "./backends";
import { decodeValues, type EncodedValues } from "../worker/codec";
import type { StepEvent } from "../worker/events";
import { releasePieces } from "../worker/spill";
import { LocalPool, WorkerStartError } from "../backends/local-pool";
// The Batch backend (and with it the AWS SDK) loads when a step first asks for Batch (step/backends.ts).
import type { BatchBackend } from "../backends/batch/run";
import { StepFailed, type StepBackend, type StepResult } from "../backends/step-backend";
import { shortReason, workerEnded, type StepFailure } from "../backends/step-failure";
import { encodeStepInputs, lazyNote, lazyOutputs, lazyType, makeHandles, sessionValue, splitOutputs, stepDeclarations, type LazyStore } from "./lazy";

const DISPLAY_SINK = Symbol.for("nbscale.displaySink");

interface Sink {
  display(data: Record<string, unknown>, metadata: Record<string, unknown>, id: string | undefined, update: boolean): void;
  clear(wait: boolean): void;
}

export interface StepHost {
  executor: Executor;
  /** Successfully executed cells, oldest first (the kernel appends plain cells; steps append here). */
  cells: HistoryCell[];
  cwd: string;
  pool(): LocalPool;
  log(text: string): void;
  /** The recorded version of a session name, so the history links a step to what it read. */
  knownVersion?(name: string): { version: number | string; sha256: string } | undefined;
  /** Where outputs too big for the kernel are kept (step/lazy.ts); without it every output comes back. */
  lazyStore?: LazyStore;
}

export class StepRunner {
  private counter = 0;
  private interrupted = false;
  private running = false;
  /** Where steps run (step/backends.ts): one of each per kernel, made when first asked for. */
  private readonly backends: Backends;
  /** The backend an attempt runs on now: the interrupt stops it. */
  private current: StepBackend | null = null;
  /** A Slurm foreach is one array job: aborted on interrupt (scancel). */
  private slurmAbort: AbortController | null = null;

  constructor(private readonly host: StepHost) {
    this.backends = new Backends(host);
  }

  /** From the kernel's SIGINT: cancels the running step; its worker is killed and replaced. */
  interrupt(): void {
    if (!this.running) return;
    this.interrupted = true;
    // A foreach's items run on the pool outside `current`.
    this.host.pool().cancelRunning();
    this.current?.stop();
    this.slurmAbort?.abort();
  }

  async run(step: CellMagic, cellId: string | undefined): Promise<ExecOutcome> {
    this.running = true;
    this.interrupted = false;
    try {
      return await this.runStep(step, cellId);
    } finally {
      this.running = false;
    }
  }

  private async runStep(step: CellMagic, cellId: string | undefined): Promise<ExecOutcome> {
    const { executor } = this.host;
    const o = step.options;
    const name = o.name ?? (cellId ? `cell-${cellId.slice(0, 8)}` : `step_${++this.counter}`);
    const fail = (error: CellError): ExecOutcome => ({ ok: false, error });

    // Each target refuses what it can never run before anything starts (this machine's memory, a queue's).
    const backend = await this.backends.get(o.on ?? "local");
    const refusal = backend.check?.({ step: name, memory: o.memory, cpu: o.cpu, gpu: o.gpu });
    if (refusal) return fail(failureError(refusal));
    if (o.foreach !== undefined) return await this.runForeach(step, name, cellId);

    // Type-check in the session first: a step never starts with a compile error.
    const declsBefore = executor.declarations;
    // `Lazy<T>` names are checked as `T`: the step gets their values (step/lazy.ts).
    const lazyDecls = stepDeclarations(executor);
    const checked = executor.check(step.body, lazyDecls);
    if (checked.diagnostics.length > 0) return fail(compileError(step.body, checked.diagnostics, step.bodyLineOffset));

    const analysis = this.analyze(step.body);
    // Names in the session that no recorded cell declares (restored or bound values) still travel as data.
    for (const u of analysis.unresolved) {
      if (u.space === "value" && u.usedBy.step && executor.has(u.name) && !analysis.inputs.some((i) => i.name === u.name)) {
        analysis.inputs.push({ name: u.name, cellId: "session", cellIndex: -1, typeOnly: false });
      }
    }
    for (const c of analysis.conflicts) process.stderr.write(`warning: step \`${name}\`: ${c.message}\n`);

    const pkg = packageStep(step.body, analysis, this.host.cells, executor.localModules(shippedCode(step.body, analysis)));
    let inputs: EncodedValues = { specs: [], frames: [], stubs: [], bytes: 0 };
    try {
      // In the kernel the step reads the session's own objects: nothing to copy, and live ones work.
      if (o.on !== "kernel") inputs = encodeStepInputs(pkg.inputs, executor);
    } catch (e) {
      if (e instanceof UnserializableValueError) {
        return fail(
          cellError("UnserializableInput", `step \`${name}\` was not started: ${e.message}`, [
            `    Or run the step in the kernel with \`--on kernel\`, where nothing is copied.`,
          ]),
        );
      }
      throw e;
    }
    const types = declaredTypes(checked.declOutput ?? "", pkg.valueOutputs);
    // Slurm and Batch jobs read Lazy inputs from the datastore themselves (backends/remote/values.ts).
    // A backend that retries by itself (Batch: the job's retryStrategy, from --retries) gets one attempt.
    const attempts = backend.retriesItself ? 1 : 1 + (o.retries ?? 0);
    const meta: ExecutionMeta = {
      step: { name, options: { ...o } as unknown as Record<string, unknown> },
      target: o.on,
      outputTypes: types,
      memory: { requestedBytes: o.memory },
      inputs: {},
    };
    for (const n of pkg.inputs) {
      const v = this.host.knownVersion?.(n);
      if (v) meta.inputs![n] = { version: v.version, sha256: v.sha256 };
    }

    let result: StepResult | null = null;
    let attempt = 0;
    // The memory an attempt asks for: an out-of-memory retry asks for what the failure suggests.
    let memory = o.memory;
    const again = o.on === "slurm" ? "as a new Slurm job" : o.on === "batch" ? "as a new job" : "on a fresh worker";
    // How the last attempt failed, when it did (a worker's death, or an ending without a result).
    let failed: StepFailure | null = null;
    for (attempt = 1; attempt <= attempts; attempt++) {
      if (this.interrupted) return { ok: false, error: interruptedError(), meta };
      failed = null;
      let job: string | undefined;
      this.current = backend;
      try {
        result = await backend.run({
          step: name,
          attempt,
          memory,
          cpu: o.cpu,
          gpu: o.gpu,
          timeoutMs: o.timeout,
          retries: o.retries,
          env: o.env,
          queue: o.queue,
          image: o.image,
          partition: o.partition,
          program: pkg.program,
          inputs,
          // In the kernel the step reads the session's own objects: nothing to copy, and live ones work.
          liveInputs: async () => Object.fromEntries(await Promise.all(pkg.inputs.map(async (n) => [n, await sessionValue(executor.valueOf(n))]))),
          lazy: lazyOutputs(this.host.lazyStore),
          onEvent: publishEvent,
          status: activeStepStatus() ?? undefined,
        });
        if (result.status === "died") failed = workerEnded(name, { ...result, pid: result.worker.pid }, memory, o.timeout);
      } catch (e) {
        if (e instanceof WorkerStartError) return { ok: false, error: cellError("WorkerStartError", `step \`${name}\`: ${e.message}`), meta };
        if (!(e instanceof StepFailed)) throw e;
        failed = e.failure;
        job = e.jobId;
        result = null;
      } finally {
        this.current = null;
      }
      if (!failed) break;
      const decision = retryDecision(failed, { attempt, attempts, memory, stopping: this.interrupted, maxMemory: backend.maxMemory });
      if (!decision.retry) {
        if (result) break;
        // Ended without a result from the worker (a scheduler's ending): the failure is all there is.
        meta.attempts = attempt;
        // Batch retries a job itself and says so in the failure (its attempts are not ours).
        const error = backend.retriesItself ? failureError(failed) : withAttempts(failureError(failed), attempt, attempts);
        return { ok: false, error, meta: { ...meta, worker: job ? { job } : undefined } };
      }
      process.stderr.write(`step \`${name}\`: attempt ${attempt} of ${attempts} failed (${shortReason(failed)}); ${decision.notice} ${again}\n`);
      memory = decision.memory ?? memory;
    }
    // A backend that retries by itself (Batch) says how many attempts it made.
    const made = result?.attempts ?? attempt;
    const allowed = o.on === "batch" ? 1 + (o.retries ?? 0) : attempts;
    meta.attempts = made;
    meta.worker =
      o.on === "batch"
        ? { job: result!.worker.id }
        : o.on === "slurm"
          ? { job: result!.worker.id, pid: result!.worker.pid, host: result!.host }
          : { id: result!.worker.id, pid: result!.worker.pid, host: os.hostname() };
    meta.memory = { requestedBytes: memory, peakBytes: result!.peakRss || undefined };
    const r = result!;
    const where =
      o.on === "kernel"
        ? "in the kernel (--on kernel)"
        : o.on === "batch"
          ? `in AWS Batch job ${r.worker.id}`
          : o.on === "slurm"
            ? `in Slurm job ${r.worker.id}${r.host ? ` on ${r.host}` : ""}`
            : `in worker ${r.worker.id}, pid ${r.worker.pid}`;
    if (r.status === "failed") {
      return { ok: false, error: withAttempts(mapRemoteError(r.error, pkg, step.body, step.bodyLineOffset, where), made, allowed), meta };
    }
    if (r.status === "died") return { ok: false, error: withAttempts(failureError(failed!), made, allowed), meta };
    if (attempt > 1) process.stderr.write(`step \`${name}\` succeeded on attempt ${attempt} of ${attempts}\n`);

    for (const s of r.stubs) {
      process.stderr.write(`warning: step \`${name}\`: \`${s.name}\` (${s.type}) stays in the worker and is not defined in the notebook: ${s.reason}\n`);
    }
    const outs = splitOutputs(r.values ? [] : r.outputs);
    const values =
      r.values ??
      (await decodeValues(outs.eager, r.pieces, (cls) => {
        const v = executor.valueOf(cls);
        return typeof v === "function" ? v : undefined;
      }).finally(() => releasePieces(r.pieces)));
    const handles = await makeHandles(outs.lazy, this.host.lazyStore);
    for (const [n, h] of handles) values.set(n, h);
    // The check's declarations type lazy names as their values: bind by type text instead.
    const adoptable = checked.declOutput !== undefined && executor.declarations === declsBefore && r.stubs.length === 0 && !lazyDecls && handles.size === 0;
    const bindTypes = handles.size === 0 ? types : { ...types, ...Object.fromEntries([...handles.keys()].map((n) => [n, lazyType(types[n])])) };
    const bound = await this.bindResults(name, step.body, values, bindTypes, adoptable ? checked.declOutput : undefined);
    if (!bound.ok) return { ...bound, meta };
    meta.outputs = Object.fromEntries(values);
    // Functions and classes the body declared are outputs too (recorded as their source).
    for (const d of analysis.outputs) if (d.value && d.kind !== "value" && executor.has(d.name)) meta.outputs[d.name] = executor.valueOf(d.name);
    this.host.cells.push({ id: cellId ?? name, code: step.body });
    for (const [n, h] of handles) process.stdout.write(lazyNote(h, types[n]));
    return { ok: true, hasValue: false, meta };
  }

  /**
   * Analysis ships a class only when the body names it; an input that is an
   * instance of a notebook class needs the class too (its methods), so such
   * classes are named for the analysis with an extra line it alone sees.
   */
  private analyze(body: string, options: AnalyzeStepOptions = {}) {
    const cells = this.host.cells;
    let analysis = analyzeStep(body, cells, options);
    const declared = new Set(
      cells.flatMap((c) =>
        analyzeCellDefinitions(c.code)
          .declarations.filter((d) => d.kind === "class")
          .map((d) => d.name),
      ),
    );
    const needed = new Set<string>();
    for (const i of analysis.inputs) {
      const v = this.host.executor.valueOf(i.name);
      if (typeof v !== "object" || v === null) continue;
      const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor;
      if (ctor?.name && declared.has(ctor.name) && !analysis.closure.some((c) => c.names.includes(ctor.name!))) needed.add(ctor.name);
    }
    if (needed.size > 0) {
      analysis = analyzeStep(`${body}\n;void [${[...needed].join(", ")}];`, cells, options);
      analysis.outputs = analysis.outputs.filter((o) => o.line < body.split("\n").length);
    }
    return analysis;
  }

  /** `--foreach` (foreach.ts): the body once per item across the pool, results joined in item order. */
  private async runForeach(step: CellMagic, name: string, cellId: string | undefined): Promise<ExecOutcome> {
    // A Slurm foreach is one array job: interrupt scancels it through this signal.
    this.slurmAbort = new AbortController();
    try {
      return await runForeach({
        host: this.host,
        step,
        name,
        cellId,
        analyze: (body, options) => this.analyze(body, options),
        bind: (values, types) => this.bindResults(name, step.body, values, types, undefined),
        interrupted: () => this.interrupted,
        publish: publishEvent,
        signal: this.slurmAbort.signal,
        batch: () => this.batchBackend(),
      });
    } finally {
      this.slurmAbort = null;
    }
  }

  private async batchBackend(): Promise<BatchBackend> {
    return (await this.backends.get("batch")) as BatchBackend;
  }

  /**
   * Values come back with their checked types: adopted from the check when
   * the session did not change meanwhile (no second compile), else bound by
   * type text. Declarations of the body
   * that are code or types (functions, classes, interfaces, imports) are run
   * in the session too, so the cell's names all exist afterwards. Types go
   * first (values may be typed by them), code last (it may use the values).
   */
  private async bindResults(
    name: string,
    body: string,
    values: Map<string, unknown>,
    types: Record<string, string>,
    declOutput: string | undefined,
  ): Promise<ExecOutcome> {
    const { executor } = this.host;
    const code = analyzeCellDefinitions(body).declarations.filter((d) => d.kind !== "value" && d.kind !== "type" && d.source);
    if (declOutput !== undefined) {
      // The check already declared every name of the body with its type; only runtime values are missing.
      executor.adopt(declOutput, values);
      if (code.length > 0) await this.replay(name, [...new Map(code.map((d) => [d.sourceKey, d.source!])).values()].join("\n"));
      return { ok: true, hasValue: false };
    }
    const decls = analyzeCellDefinitions(body).declarations.filter((d) => d.kind !== "value" && d.source);
    const seen = new Set<string>();
    const sources = (pick: (kind: string) => boolean) =>
      decls
        .filter((d) => pick(d.kind) && !seen.has(d.sourceKey) && seen.add(d.sourceKey))
        .map((d) => d.source!)
        .join("\n");
    const typeSrc = sources((k) => k === "type");
    if (typeSrc) await this.replay(name, typeSrc);
    const bindings: Binding[] = [...values].map(([n, value]) => ({ name: n, value, type: types[n], kind: "const" }));
    const bound = await executor.bind(bindings);
    if (!bound.ok) return bound;
    const codeSrc = sources(() => true);
    if (codeSrc) await this.replay(name, codeSrc);
    return { ok: true, hasValue: false };
  }

  private async replay(name: string, source: string): Promise<void> {
    const r = await this.host.executor.execute(source);
    if (!r.ok) process.stderr.write(`warning: step \`${name}\`: some declarations could not be added to the notebook: ${r.error.evalue}\n`);
  }
}

/** A worker's output goes where the running cell's output goes. */
function publishEvent(e: StepEvent): void {
  switch (e.type) {
    case "stream":
      (e.name === "stderr" ? process.stderr : process.stdout).write(e.text);
      return;
    case "display": {
      const sink = (globalThis as Record<symbol, unknown>)[DISPLAY_SINK] as Sink | undefined;
      if (sink) sink.display(e.data, e.metadata, e.displayId, e.update);
      return;
    }
    case "clear": {
      const sink = (globalThis as Record<symbol, unknown>)[DISPLAY_SINK] as Sink | undefined;
      sink?.clear(e.wait);
      return;
    }
  }
}

/**
 * Runs a `%%step` cell: type-checks the body against the session, works out
 * what it needs (analysis.ts), refuses inputs that can't travel, runs the
 * packaged program on its target (local worker pool, or the kernel itself),
 * streams its output into the cell, and binds the names it declares back
 * into the session with their types.
 */
import * as os from "node:os";
import type { Executor, ExecOutcome, Binding } from "../session/executor";
import type { CellMagic } from "../magics";
import { formatSize } from "../magics";
import type { ExecutionMeta } from "../session/execution-meta";
import { activeStepStatus } from "../session/step-status";
import { interruptedError, type CellError } from "../session/errors";
import { UnserializableValueError } from "../store/errors";
import { analyzeCellDefinitions, analyzeStep, type AnalyzeStepOptions, type HistoryCell } from "./analysis";
import { runForeach } from "./foreach";
import { declaredTypes, packageStep, shippedCode, type StepPackage } from "./package";
import { mapRemoteError } from "./remote-error";
import { cellError, compileError, failureError, withAttempts } from "./failures";
import { retryDecision } from "./retry";
import { decodeValues, type EncodedValues } from "../worker/codec";
import type { StepEvent } from "../worker/events";
import { runProgram } from "../worker/runner";
import { releasePieces } from "../worker/spill";
import { stepRequire } from "../worker/require";
import { LocalPool, WorkerStartError, type TaskResult } from "../backends/local-pool";
// The Batch backend (and with it the AWS SDK) loads when a step first asks for Batch.
import type { BatchBackend } from "../backends/batch/run";
import { BatchStepError } from "../backends/batch/errors";
import { runSlurmStep, SlurmStepError } from "../backends/slurm/run";
import { shortReason, workerEnded, type StepFailure } from "../backends/step-failure";
import { humanBytes } from "../backends/memory";
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
  /** Set while a step runs in the kernel (`--on kernel`), to stop it on interrupt. */
  private interruptKernelStep: (() => void) | null = null;
  private interrupted = false;
  private running = false;
  /** What an in-kernel step declared: handed over as is, never serialized. */
  private kernelOutputs: Map<string, unknown> | null = null;
  /** `--on batch`: one per kernel (keeps registered job definitions); aborted on interrupt. */
  private batch: BatchBackend | null = null;
  private batchAbort: AbortController | null = null;
  /** `--on slurm`: aborted on interrupt (the job is scancel'd); the node the last job ran on. */
  private slurmAbort: AbortController | null = null;
  private slurmHost: string | undefined;

  constructor(private readonly host: StepHost) {}

  /** From the kernel's SIGINT: cancels the running step; its worker is killed and replaced. */
  interrupt(): void {
    if (!this.running) return;
    this.interrupted = true;
    this.host.pool().cancelRunning();
    this.interruptKernelStep?.();
    this.batchAbort?.abort();
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

    // This machine's limits say nothing about a Batch queue's (backends/batch checks those).
    const refusal = o.on === "batch" || o.on === "slurm" ? null : this.refuseResources(name, o.memory, o.cpu, o.gpu);
    if (refusal) return fail(refusal);
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
    // Batch retries a job itself (its retryStrategy, from --retries).
    const attempts = o.on === "batch" ? 1 : 1 + (o.retries ?? 0);
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

    let result: TaskResult | null = null;
    let attempt = 0;
    // The memory an attempt asks for: an out-of-memory retry asks for what the failure suggests.
    let memory = o.memory;
    for (attempt = 1; attempt <= attempts; attempt++) {
      if (this.interrupted) return { ok: false, error: interruptedError(), meta };
      const ask = { ...o, memory };
      let failed: StepFailure | null = null;
      try {
        result =
          o.on === "kernel"
            ? await this.runInKernel(name, attempt, o.env, o.timeout, pkg)
            : o.on === "batch"
              ? await this.runOnBatch(name, attempt, ask, pkg, inputs)
              : o.on === "slurm"
                ? await this.runOnSlurm(name, attempt, ask, pkg, inputs)
                : await this.runOnPool(name, attempt, ask, pkg, inputs);
        if (result.status === "died") failed = workerEnded(name, { ...result, pid: result.worker.pid }, memory, o.timeout);
      } catch (e) {
        if (e instanceof SlurmStepError || e instanceof BatchStepError) failed = e.failure;
        else if (e instanceof WorkerStartError) return { ok: false, error: cellError("WorkerStartError", `step \`${name}\`: ${e.message}`), meta };
        else throw e;
        const decision = retryDecision(failed, { attempt, attempts, memory, stopping: this.interrupted });
        if (decision.retry) {
          process.stderr.write(`step \`${name}\`: attempt ${attempt} of ${attempts} failed (${shortReason(failed)}); ${decision.notice} as a new Slurm job\n`);
          memory = decision.memory ?? memory;
          continue;
        }
        meta.attempts = attempt;
        const job = e.jobId ? { job: e.jobId } : undefined;
        // Batch retries a job itself and says so in the failure (its attempts are not ours).
        const error = e instanceof BatchStepError ? failureError(failed) : withAttempts(failureError(failed), attempt, attempts);
        return { ok: false, error, meta: { ...meta, worker: job } };
      }
      if (!failed) break;
      const maxMemory = o.on === "kernel" ? 0 : this.host.pool().totalMemory;
      const decision = retryDecision(failed, { attempt, attempts, memory, stopping: this.interrupted, maxMemory });
      if (!decision.retry) break;
      process.stderr.write(`step \`${name}\`: attempt ${attempt} of ${attempts} failed (${shortReason(failed)}); ${decision.notice} on a fresh worker\n`);
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
          ? { job: result!.worker.id, pid: result!.worker.pid, host: this.slurmHost }
          : { id: result!.worker.id, pid: result!.worker.pid, host: os.hostname() };
    meta.memory = { requestedBytes: memory, peakBytes: result!.peakRss || undefined };
    const r = result!;
    const where =
      o.on === "kernel"
        ? "in the kernel (--on kernel)"
        : o.on === "batch"
          ? `in AWS Batch job ${r.worker.id}`
          : o.on === "slurm"
            ? `in Slurm job ${r.worker.id}${this.slurmHost ? ` on ${this.slurmHost}` : ""}`
            : `in worker ${r.worker.id}, pid ${r.worker.pid}`;
    if (r.status === "failed") {
      return { ok: false, error: withAttempts(mapRemoteError(r.error, pkg, step.body, step.bodyLineOffset, where), made, allowed), meta };
    }
    if (r.status === "died") {
      const failed = workerEnded(name, { ...r, pid: r.worker.pid }, memory, o.timeout);
      return { ok: false, error: withAttempts(failureError(failed), made, allowed), meta };
    }
    if (attempt > 1) process.stderr.write(`step \`${name}\` succeeded on attempt ${attempt} of ${attempts}\n`);

    for (const s of r.stubs) {
      process.stderr.write(`warning: step \`${name}\`: \`${s.name}\` (${s.type}) stays in the worker and is not defined in the notebook: ${s.reason}\n`);
    }
    const outs = splitOutputs(o.on === "kernel" ? [] : r.outputs);
    const values =
      o.on === "kernel"
        ? (this.kernelOutputs ?? new Map<string, unknown>())
        : await decodeValues(outs.eager, r.pieces, (cls) => {
            const v = executor.valueOf(cls);
            return typeof v === "function" ? v : undefined;
          }).finally(() => releasePieces(r.pieces));
    this.kernelOutputs = null;
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
    const { BatchBackend } = await import("../backends/batch/run");
    return (this.batch ??= new BatchBackend({ env: process.env, cwd: this.host.cwd, notebookDir: this.host.cwd }));
  }

  private refuseResources(name: string, memory?: number, cpu?: number, gpu?: number): CellError | null {
    const total = this.host.pool().totalMemory;
    const elsewhere = "run it where there is more with `--on batch` or `--on slurm`";
    if (memory !== undefined && memory > total) {
      return cellError(
        "StepResourceError",
        `step \`${name}\` asks for --memory ${formatSize(memory)} but this machine has ${humanBytes(total)} of memory in all; ask for less, or ${elsewhere}`,
      );
    }
    const cores = os.availableParallelism();
    if (cpu !== undefined && cpu > cores) {
      return cellError(
        "StepResourceError",
        `step \`${name}\` asks for --cpu ${cpu} but this machine has ${cores} CPU cores; ask for at most ${cores}, or ${elsewhere}`,
      );
    }
    if (gpu !== undefined && gpu > 0) {
      return cellError("StepResourceError", `step \`${name}\` asks for --gpu ${gpu}, but local workers have no GPUs; ${elsewhere}`);
    }
    return null;
  }

  private async runOnPool(name: string, attempt: number, o: CellMagic["options"], pkg: StepPackage, inputs: EncodedValues): Promise<TaskResult> {
    return await this.host.pool().run({
      step: name,
      attempt,
      memory: o.memory,
      env: o.env,
      timeoutMs: o.timeout,
      program: pkg.program,
      inputs,
      lazy: lazyOutputs(this.host.lazyStore),
      onEvent: publishEvent,
    });
  }

  private async runOnBatch(name: string, attempt: number, o: CellMagic["options"], pkg: StepPackage, inputs: EncodedValues): Promise<TaskResult> {
    this.batchAbort = new AbortController();
    try {
      return await (
        await this.batchBackend()
      ).run({
        step: name,
        attempt,
        memory: o.memory,
        cpu: o.cpu,
        gpu: o.gpu,
        timeoutMs: o.timeout,
        retries: o.retries,
        env: o.env,
        queue: o.queue,
        image: o.image,
        program: pkg.program,
        inputs,
        onEvent: publishEvent,
        signal: this.batchAbort.signal,
        status: activeStepStatus() ?? undefined,
      });
    } finally {
      this.batchAbort = null;
    }
  }

  /** `--on slurm` (backends/slurm): one Slurm job over the datastore transport; interrupt scancels it. */
  private async runOnSlurm(name: string, attempt: number, o: CellMagic["options"], pkg: StepPackage, inputs: EncodedValues): Promise<TaskResult> {
    this.slurmAbort = new AbortController();
    try {
      const r = await runSlurmStep({
        step: name,
        attempt,
        memory: o.memory,
        cpu: o.cpu,
        gpu: o.gpu,
        timeoutMs: o.timeout,
        partition: o.partition,
        env: o.env,
        program: pkg.program,
        inputs,
        cwd: this.host.cwd,
        signal: this.slurmAbort.signal,
        onEvent: publishEvent,
      });
      this.slurmHost = r.host;
      return r.result;
    } finally {
      this.slurmAbort = null;
    }
  }

  /**
   * `--on kernel`: the same program, run in this process: the body gets its
   * own scope and only the names it declares come back (and are recorded),
   * as on a worker. Inputs are the session's objects themselves, so a step
   * can use what can't be copied (connections, servers) and changes it
   * makes to them stay, as in a plain cell.
   */
  private async runInKernel(name: string, attempt: number, env: Record<string, string>, timeoutMs: number | undefined, pkg: StepPackage): Promise<TaskResult> {
    const worker = { id: "kernel", pid: process.pid };
    const saved = new Map<string, string | undefined>();
    const setEnv = { ...env, NBSCALE_STEP: name, NBSCALE_ATTEMPT: String(attempt) };
    for (const [k, v] of Object.entries(setEnv)) {
      saved.set(k, process.env[k]);
      process.env[k] = v;
    }
    let timer: NodeJS.Timeout | undefined;
    const stop = new Promise<"interrupted" | "timeout">((resolve) => {
      this.interruptKernelStep = () => resolve("interrupted");
      if (timeoutMs !== undefined) timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      const run = runProgram(
        pkg.program,
        { inputs: async () => Object.fromEntries(await Promise.all(pkg.inputs.map(async (n) => [n, await sessionValue(this.host.executor.valueOf(n))]))) },
        { require: stepRequire(this.host.cwd), cwd: this.host.cwd, breakOnSigint: true },
      );
      const outcome = await Promise.race([run.then((v) => ({ v })), stop]);
      if (outcome === "interrupted" || outcome === "timeout") {
        run.catch(() => undefined);
        return { status: "died", death: outcome, signal: null, code: null, stderr: "", worker, peakRss: 0 };
      }
      this.kernelOutputs = new Map(Object.entries(outcome.v));
      return { status: "done", outputs: [], pieces: [], stubs: [], worker, peakRss: 0 };
    } catch (e) {
      if (e instanceof Error && (e as NodeJS.ErrnoException).code === "ERR_SCRIPT_EXECUTION_INTERRUPTED") {
        return { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker, peakRss: 0 };
      }
      const err = e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : { name: "Uncaught", message: String(e) };
      return { status: "failed", error: err, worker, peakRss: 0 };
    } finally {
      this.interruptKernelStep = null;
      if (timer) clearTimeout(timer);
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
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

/**
 * `nbscale run` and `nbscale resume`: runs a flow's steps as a DAG.
 *
 * A step starts when every step it reads from has succeeded; at most
 * `maxWorkers` worker processes run at once (a foreach step's items count
 * one each). When a step fails, steps downstream of it are skipped, and
 * independent branches still finish, so a resume has less left to do.
 *
 * Resume: steps in `force` (the failed ones, or `--from` and everything
 * downstream) always run; any other step is reused from the earlier run,
 * without executing, when it succeeded there with the same code hash and the
 * same input hashes as it would get now. So an edit to an upstream step
 * re-runs it, and whatever its new output changes re-runs too.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, hostname, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Datastore, deserialize, type DatastoreLocation } from "../store";
import { newRunId, RunStore, RunView, StepError, StepRecord } from "../store/runs";
import { parseDuration, parseSize } from "../magics/units";
import { failure, shortReason, workerEnded, type StepFailure, type WorkerEnding } from "../backends/step-failure";
import { retryDecision, type AttemptState } from "../step/retry";
import { stepErrorOf } from "./step-error";
import type { StepDef, Target } from "./api";
import { depsOf, LoadedFlow, loadFlow, topoOrder } from "./load";
import { ProcessLauncher, StepLauncher, TaskOutcome } from "./pool";
import type { WorkerTask } from "./worker";
import { canReuse, downstreamOf } from "./plan";
import type { Progress } from "./progress";
import { RemoteSetupError, type RemoteTaskOutcome } from "./remote-launcher";
import { prepareRemoteTargets } from "./remote-targets";

export interface RunOptions {
  flowFile: string;
  datastore: DatastoreLocation;
  /** `--on`: overrides every step's own `on`. */
  on: Target | null;
  maxWorkers: number | null;
  progress: Progress;
  resume?: { previous: RunView; force: string[] };
  launcher?: StepLauncher;
}

export interface StepResult {
  status: "succeeded" | "failed" | "skipped";
  executed: boolean;
  artifacts: Record<string, string>;
}

export interface RunResult {
  run: string;
  status: "succeeded" | "failed";
  steps: Record<string, StepResult>;
  /** Failed steps, with what to tell the user. */
  failures: Array<{ step: string; error: StepError }>;
  flowPath: string;
}

/** Targets this build can run steps on; slurm and batch go through remote-targets.ts. */
const AVAILABLE: Target[] = ["local", "kernel", "slurm", "batch"];

export class RunSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunSetupError";
  }
}

export function defaultMaxWorkers(): number {
  return Math.max(1, availableParallelism());
}

export async function runFlow(options: RunOptions): Promise<RunResult> {
  if (options.launcher) return runWith(options, options.launcher);
  // Started before the flow is loaded, so a worker boots while the runner compiles.
  const launcher = new ProcessLauncher({ maxWorkers: options.maxWorkers ?? defaultMaxWorkers(), warm: 1 });
  try {
    return await runWith(options, launcher);
  } finally {
    launcher.close();
  }
}

async function runWith(options: RunOptions, launcher: StepLauncher): Promise<RunResult> {
  launcher.limit?.(options.maxWorkers ?? defaultMaxWorkers());
  const loaded = loadFlow(options.flowFile);
  const order = topoOrder(loaded.flow.steps);
  const targetOf = (s: StepDef): Target => options.on ?? s.settings.on ?? "local";
  const unavailable = order.filter((s) => !AVAILABLE.includes(targetOf(s)));
  if (unavailable.length > 0) {
    const list = unavailable.map((s) => `${s.name} (--on ${targetOf(s)})`).join(", ");
    const backends = [...new Set(unavailable.map(targetOf))].map((t) => (t === "batch" ? "AWS Batch" : "Slurm"));
    throw new RunSetupError(
      `${backends.join(" and ")} ${backends.length > 1 ? "are" : "is"} not available in this version of nbscale yet; ` +
        `steps that ask for it: ${list}. Run them here with \`--on local\`.`,
    );
  }
  const stepNames = order.map((s) => s.name);
  if (options.resume) {
    for (const f of options.resume.force) {
      if (!stepNames.includes(f)) throw new RunSetupError(`step ${f} is not in ${loaded.path}; its steps: ${stepNames.join(", ")}`);
    }
  }

  // Refusals (no queue, no sbatch, a datastore the jobs can't reach) come before anything is written.
  const remote = await prepareRemoteTargets(order, targetOf, options.datastore, loaded.path).catch((e: unknown) => {
    throw e instanceof RemoteSetupError ? new RunSetupError(e.message) : e;
  });
  const ds = await Datastore.open(options.datastore, { create: true });
  const runs = new RunStore(ds.backend);
  const runId = newRunId();
  const maxWorkers = options.maxWorkers ?? defaultMaxWorkers();
  // Recorded while the first steps run: nothing a step does needs the run
  // record, and step records wait for it (save()), so it still comes first.
  const begun = runs.blobs.put([Buffer.from(loaded.source, "utf8")]).then(() =>
    runs.begin({
      id: runId,
      flow: { path: loaded.path, name: loaded.flow.name, source_sha256: loaded.sourceSha256 },
      started: new Date().toISOString(),
      options: { on: options.on, max_workers: maxWorkers },
      resumed_from: options.resume?.previous.id ?? null,
      steps: order.map((s) => ({ name: s.name, needs: depsOf(s) })),
    }),
  );
  begun.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
  const tmp = mkdtempSync(join(tmpdir(), "nbscale-run-"));
  const jsPath = join(tmp, "flow.js");
  writeFileSync(jsPath, loaded.js);

  const ctx: Ctx = {
    options,
    loaded,
    ds,
    runs,
    runId,
    jsPath,
    slots: new Semaphore(maxWorkers),
    launcher,
    remote: remote.launchers(ds, (name) => order.find((s) => s.name === name)!.settings, launcher),
    results: new Map(),
    needed: neededOutputs(order),
    force: options.resume
      ? downstreamOf(
          order.map((s) => ({ name: s.name, needs: depsOf(s) })),
          options.resume.force,
        )
      : new Set(),
    targetOf,
    begun,
    saving: [],
    stopping: false,
  };
  options.progress.begin(runId, loaded.path, order.length);
  const onSigint = (): void => {
    ctx.stopping = true;
    ctx.launcher.stopAll();
    for (const l of ctx.remote.values()) l.stopAll();
  };
  process.once("SIGINT", onSigint);
  try {
    const done = new Map<string, Promise<StepRecord>>();
    const start = (s: StepDef): Promise<StepRecord> => {
      let p = done.get(s.name);
      if (!p) {
        p = (async () => {
          const deps = await Promise.all(depsOf(s).map((d) => start(order.find((o) => o.name === d)!)));
          const bad = deps.find((d) => d.status !== "succeeded");
          return bad ? skip(ctx, s, bad.step) : runStep(ctx, s);
        })();
        done.set(s.name, p);
      }
      return p;
    };
    const records = await Promise.all(order.map(start));
    await begun;
    await Promise.all(ctx.saving);
    const status = records.every((r) => r.status === "succeeded") ? "succeeded" : "failed";
    await runs.finish(runId, status);
    const result: RunResult = {
      run: runId,
      status,
      steps: Object.fromEntries(records.map((r) => [r.step, { status: r.status, executed: r.executed, artifacts: r.artifacts }])),
      failures: records.filter((r) => r.status === "failed" && r.error).map((r) => ({ step: r.step, error: r.error! })),
      flowPath: loaded.path,
    };
    options.progress.end(result);
    return result;
  } finally {
    process.removeListener("SIGINT", onSigint);
    rmSync(tmp, { recursive: true, force: true });
  }
}

interface Ctx {
  options: RunOptions;
  loaded: LoadedFlow;
  ds: Datastore;
  runs: RunStore;
  runId: string;
  jsPath: string;
  slots: Semaphore;
  launcher: StepLauncher;
  /** Slurm and Batch steps' launchers; every other target runs on `launcher`. */
  remote: Map<Target, StepLauncher>;
  results: Map<string, StepRecord>;
  needed: Map<string, Set<string>>;
  force: Set<string>;
  targetOf: (s: StepDef) => Target;
  /** The run record is written. */
  begun: Promise<unknown>;
  /** Step records being written (see save()). */
  saving: Promise<void>[];
  /** Ctrl-C came: nothing is retried. */
  stopping: boolean;
}

/**
 * Writes a step record (and its log first) without holding up the steps
 * downstream: they need only its artifacts, which the worker has already
 * committed. The run's end marker waits for every save, so it still comes
 * last, and a record never appears before the run record.
 */
function save(ctx: Ctx, rec: StepRecord, log?: string): void {
  const saved = ctx.begun.then(async () => {
    if (log !== undefined) rec.log = await ctx.runs.putLog(log);
    await ctx.runs.putStep(rec);
  });
  saved.catch(() => undefined); // awaited before the run ends; see runWith
  ctx.saving.push(saved);
}

function baseRecord(ctx: Ctx, s: StepDef): StepRecord {
  return {
    format: 1,
    run: ctx.runId,
    step: s.name,
    status: "skipped",
    executed: false,
    reused_from: null,
    code_sha256: ctx.loaded.steps.get(s.name)!.codeSha256,
    inputs: {},
    artifacts: {},
    versions: {},
    execution: null,
    target: ctx.targetOf(s),
    attempts: 0,
    started: null,
    finished: null,
    error: null,
    log: null,
    worker: null,
  };
}

async function skip(ctx: Ctx, s: StepDef, because: string): Promise<StepRecord> {
  const rec: StepRecord = {
    ...baseRecord(ctx, s),
    error: { kind: "upstream", message: `not run: step ${because} did not succeed` },
  };
  save(ctx, rec);
  ctx.results.set(s.name, rec);
  ctx.options.progress.finished(s.name, rec, 0);
  return rec;
}

async function runStep(ctx: Ctx, s: StepDef): Promise<StepRecord> {
  const rec = baseRecord(ctx, s);
  const src = ctx.loaded.steps.get(s.name)!;
  // What this step receives, by hash.
  const inputs: WorkerTask["inputs"] = {};
  for (const [param, ref] of Object.entries(s.inputs)) {
    const up = ctx.results.get(ref.step)!;
    const sha = up.artifacts[ref.name];
    if (sha === undefined) {
      return fail(ctx, s, rec, {
        kind: "error",
        message:
          `input ${param} reads \`${ref.name}\` from step ${ref.step}, which did not return it ` +
          `(it returned: ${Object.keys(up.artifacts).join(", ") || "nothing"})`,
      });
    }
    inputs[param] = { sha256: sha, version: up.versions[ref.name] ?? null, from: `${ref.step}.${ref.name}` };
    rec.inputs[param] = { sha256: sha, from: `${ref.step}.${ref.name}` };
  }

  const prev = ctx.options.resume?.previous;
  const before = prev?.steps[s.name];
  if (prev && before && !ctx.force.has(s.name) && canReuse(before, src.codeSha256, rec.inputs)) {
    const reused: StepRecord = {
      ...rec,
      status: "succeeded",
      executed: false,
      reused_from: before.reused_from ?? prev.id,
      artifacts: before.artifacts,
      versions: before.versions,
      execution: before.execution,
      log: before.log,
      started: before.started,
      finished: before.finished,
      target: before.target,
      worker: before.worker,
    };
    save(ctx, reused);
    ctx.results.set(s.name, reused);
    ctx.options.progress.finished(s.name, reused, 0);
    return reused;
  }

  const memoryBytes = s.settings.memory !== undefined ? (parseSize(s.settings.memory) ?? null) : null;
  const timeoutMs = s.settings.timeout !== undefined ? (parseDuration(s.settings.timeout) ?? null) : null;
  const task: WorkerTask = {
    flowPath: ctx.loaded.path,
    jsPath: ctx.jsPath,
    step: s.name,
    run: ctx.runId,
    datastore: ctx.options.datastore.path,
    inputs,
    functionSources: src.functionSources,
    code: src.bodyText,
    target: ctx.targetOf(s),
    memoryBytes,
    needed: [...(ctx.needed.get(s.name) ?? [])],
  };
  const launch: Launch = { memoryBytes, timeoutMs, env: s.settings.env ?? {} };
  const started = Date.now();
  rec.started = new Date(started).toISOString();
  let log = "";
  ctx.options.progress.started(s.name);
  if (task.target === "kernel") {
    // A flow has no kernel to run in: say so rather than quietly running somewhere else.
    const note = `[nbscale] step ${s.name} asks for --on kernel; a flow run has no kernel, so it runs on a local worker (its inputs are copies)\n`;
    log += note;
    ctx.options.progress.output(s.name, note);
  }
  const attempts = 1 + (s.settings.retries ?? 0);
  let failure: StepFailure | null = null;
  let last: TaskOutcome | null = null;
  if (s.foreach) {
    // Each item is retried on its own (runForeach): a failed item does not run the others again.
    const outcome = await runForeach(ctx, s, task, launch, attempts);
    ({ last, failure } = outcome);
    log += outcome.log;
    rec.attempts = outcome.attempts;
    if (!failure) Object.assign(rec, { artifacts: outcome.artifacts, versions: outcome.versions, execution: outcome.execution });
  } else {
    const outcome = await withRetries(ctx, s, "", attempts, launch, (l) => runOne(ctx, s.name, { ...task, memoryBytes: l.memoryBytes }, l));
    ({ last, failure } = outcome);
    log += outcome.log;
    rec.attempts = outcome.attempts;
    if (!failure) Object.assign(rec, { artifacts: outcome.artifacts, versions: outcome.versions, execution: outcome.execution });
  }
  rec.finished = new Date().toISOString();
  // A Slurm or Batch job says where it ran (the node, the container's host).
  rec.worker = last ? { host: (last as RemoteTaskOutcome).host ?? hostname(), pid: last.pid } : null;
  if (failure) return fail(ctx, s, rec, stepErrorOf(s.name, withAttempts(failure, rec.attempts, attempts)), Date.now() - started, log);
  rec.status = "succeeded";
  rec.executed = true;
  save(ctx, rec, log);
  ctx.results.set(s.name, rec);
  ctx.options.progress.finished(s.name, rec, Date.now() - started);
  return rec;
}

async function fail(ctx: Ctx, s: StepDef, rec: StepRecord, error: StepError, elapsed = 0, log?: string): Promise<StepRecord> {
  const failed: StepRecord = { ...rec, status: "failed", executed: rec.attempts > 0, error };
  save(ctx, failed, log);
  ctx.results.set(s.name, failed);
  ctx.options.progress.finished(s.name, failed, elapsed);
  return failed;
}

interface Attempt {
  failure: StepFailure | null;
  log: string;
  artifacts: Record<string, string>;
  versions: Record<string, number>;
  execution: string | null;
  last: TaskOutcome | null;
}

type Launch = { memoryBytes: number | null; timeoutMs: number | null; env: Record<string, string> };

async function runOne(ctx: Ctx, label: string, task: WorkerTask, launch: Launch): Promise<Attempt> {
  const remote = ctx.remote.get(task.target as Target);
  // A Slurm or Batch job uses no worker process here: the scheduler (and foreach `parallel`) bounds those.
  const release = remote ? () => undefined : await ctx.slots.acquire();
  let outcome: TaskOutcome;
  try {
    const launcher = remote ?? ctx.launcher;
    const item = task.item && "index" in task.item ? task.item.index : null;
    outcome = await launcher.run(task, {
      ...launch,
      onOutput: (t) => ctx.options.progress.output(label, t),
      onJobState: (st) => ctx.options.progress.jobState(task.step, item, st),
    });
  } finally {
    release();
  }
  const empty = { artifacts: {}, versions: {}, execution: null, last: outcome, log: outcome.log };
  if (outcome.reply?.type === "done") {
    return { ...empty, failure: null, artifacts: outcome.reply.artifacts, versions: outcome.reply.versions, execution: outcome.reply.execution };
  }
  return { ...empty, failure: (outcome as RemoteTaskOutcome).failure ?? describeFailure(label, outcome, launch) };
}

/** How a local worker's task failed, by the same rules (and words) as a cell step's worker. */
export function describeFailure(label: string, outcome: TaskOutcome, launch: Launch): StepFailure {
  if (outcome.reply?.type === "failed") {
    return failure("exception", outcome.reply.ename, `${outcome.reply.ename}: ${outcome.reply.message}`);
  }
  const death = outcome.ending ?? "killed";
  const ending: WorkerEnding =
    death === "killed"
      ? { death, pid: outcome.pid ?? 0, signal: outcome.signal, code: outcome.exitCode, stderr: outcome.log.slice(-4096) }
      : death === "oom" || death === "oom-heap"
        ? { death, peakRss: outcome.peakRss }
        : { death };
  return workerEnded(label, ending, launch.memoryBytes ?? undefined, launch.timeoutMs ?? undefined);
}

/** What the retry policy needs to know of an attempt that failed. */
function retryState(ctx: Ctx, s: StepDef, attempt: number, attempts: number, launch: Launch): AttemptState {
  const local = !ctx.remote.has(ctx.targetOf(s));
  return { attempt, attempts, memory: launch.memoryBytes ?? undefined, stopping: ctx.stopping, maxMemory: local ? totalmem() : undefined };
}

/**
 * One task run by the retry policy: again while it says so, with the memory
 * it says; each retry noted in the log. `item`: `item 3: ` for a foreach item.
 */
async function withRetries(
  ctx: Ctx,
  s: StepDef,
  item: string,
  attempts: number,
  launch: Launch,
  run: (launch: Launch) => Promise<Attempt>,
): Promise<Attempt & { attempts: number }> {
  let log = "";
  for (let attempt = 1; ; attempt++) {
    const r = await run(launch);
    log += r.log;
    const decision = r.failure ? retryDecision(r.failure, retryState(ctx, s, attempt, attempts, launch)) : ({ retry: false } as const);
    if (!decision.retry) return { ...r, log, attempts: attempt };
    log += `\n[nbscale: ${item}attempt ${attempt} of ${attempts} failed (${shortReason(r.failure!)}); ${decision.notice}: attempt ${attempt + 1} of ${attempts}]\n`;
    if (decision.memory !== undefined) launch = { ...launch, memoryBytes: decision.memory };
  }
}

/** `(attempt 2 of 3)` after the facts, when retries allowed more than one. */
function withAttempts(f: StepFailure, made: number, attempts: number): StepFailure {
  return attempts > 1 ? { ...f, details: [...f.details, `(attempt ${made} of ${attempts})`] } : f;
}

/**
 * foreach: a worker evaluates the items (`count`), then each item runs as
 * its own task (at most `parallel` at once, and within `maxWorkers`), and
 * the runner gathers each returned name into an array in item order. An
 * item that fails is retried on its own, by the retry policy; the others
 * keep their results.
 */
async function runForeach(ctx: Ctx, s: StepDef, task: WorkerTask, launch: Launch, attempts: number): Promise<Attempt & { attempts: number }> {
  const counted = await runOne(ctx, s.name, { ...task, item: { count: true }, needed: [] }, launch);
  if (counted.failure || counted.last?.reply?.type !== "done") return { ...counted, attempts: 1 };
  const n = counted.last.reply.count ?? 0;
  const limit = new Semaphore(s.settings.parallel ?? n);
  let done = 0;
  ctx.options.progress.items(s.name, 0, n);
  const items = await Promise.all(
    Array.from({ length: n }, async (_, index) => {
      const label = `${s.name}[${index}]`;
      const r = await withRetries(ctx, s, `item ${index}: `, attempts, launch, async (l) => {
        const release = await limit.acquire();
        try {
          return await runOne(ctx, label, { ...task, item: { index }, needed: task.needed, memoryBytes: l.memoryBytes }, l);
        } finally {
          release();
        }
      });
      ctx.options.progress.items(s.name, ++done, n);
      return r;
    }),
  );
  const log = items.map((r, i) => `[item ${i}]\n${r.log}`).join("\n");
  const tried = Math.max(1, ...items.map((r) => r.attempts));
  const bad = items.flatMap((r, i) => (r.failure ? [i] : []));
  if (bad.length > 0) {
    // As a cell's foreach says it (step/foreach.ts), but a flow step is whole or not at all: nothing is kept.
    const one = items[bad[0]].failure!;
    const failed: StepFailure = {
      ...(bad.length === 1 && one.kind !== "exception" ? one : failure("exception", "ForeachItemsFailed", "")),
      name: "ForeachItemsFailed",
      message: `${bad.length} of ${n} items of step \`${s.name}\` failed: ${bad.length === 1 ? "index" : "indices"} ${bad.join(", ")}`,
      details: bad.map((i) => {
        const tried = items[i].attempts > 1 ? ` (after ${items[i].attempts} attempts)` : "";
        return `item ${i}${tried}: ${items[i].failure!.message}`;
      }),
    };
    return { ...items[bad[0]], log, attempts: Math.max(...bad.map((i) => items[i].attempts)), failure: failed };
  }
  // Gather: name → array of each item's value, in item order.
  const names = [...new Set(items.flatMap((r) => Object.keys(r.artifacts)))];
  const gathered: Record<string, unknown[]> = {};
  for (const name of names) {
    gathered[name] = [];
    for (const r of items) {
      const sha = r.artifacts[name];
      const decoded = sha === undefined ? null : await ctx.ds.blobs.readWith(sha, name, (rd) => deserialize(rd));
      gathered[name].push(decoded === null ? undefined : decoded.kind === "v8" ? decoded.value : decoded.kind === "source" ? decoded.source : undefined);
    }
  }
  const rec = await ctx.ds.recordExecution({
    notebook: ctx.loaded.path,
    cell: s.name,
    code: task.code,
    step: { name: s.name, options: { ...s.settings, run: ctx.runId, foreach: n } },
    outputs: gathered,
    status: "ok",
    started: new Date(),
    target: task.target,
    worker: { id: `flow:${ctx.runId}` },
  });
  return {
    failure: null,
    log,
    attempts: tried,
    artifacts: Object.fromEntries(Object.entries(rec.outputs).map(([k, o]) => [k, o.sha256])),
    versions: Object.fromEntries(Object.entries(rec.outputs).map(([k, o]) => [k, o.version])),
    execution: rec.id,
    last: items[items.length - 1]?.last ?? counted.last,
  };
}

/** Per step, the returned names other steps read. */
function neededOutputs(steps: readonly StepDef[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of steps) {
    for (const ref of Object.values(s.inputs)) {
      let set = out.get(ref.step);
      if (!set) out.set(ref.step, (set = new Set()));
      set.add(ref.name);
    }
  }
  return out;
}

export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly size: number) {}
  async acquire(): Promise<() => void> {
    // A released slot is handed straight to the next waiter, so nobody can slip in between.
    if (this.active < Math.max(1, this.size)) this.active++;
    else await new Promise<void>((r) => this.waiting.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

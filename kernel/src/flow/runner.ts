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
import { getHeapStatistics } from "node:v8";
import { availableParallelism, hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { Datastore, deserialize, type DatastoreLocation } from "../store";
import { newRunId, RunStore, RunView, StepError, StepRecord } from "../store/runs";
import { formatSize, parseDuration, parseSize } from "../magics/units";
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
  };
  options.progress.begin(runId, loaded.path, order.length);
  const onSigint = (): void => {
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
  const launch = { memoryBytes, timeoutMs, env: s.settings.env ?? {} };
  const started = Date.now();
  rec.started = new Date(started).toISOString();
  ctx.options.progress.started(s.name);
  const attempts = 1 + (s.settings.retries ?? 0);
  let log = "";
  let error: StepError | null = null;
  let last: TaskOutcome | null = null;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    rec.attempts = attempt;
    if (attempt > 1) log += `\n[nbscale: attempt ${attempt} of ${attempts}]\n`;
    const outcome = s.foreach ? await runForeach(ctx, s, task, launch) : await runOne(ctx, s.name, task, launch);
    last = outcome.last;
    log += outcome.log;
    error = outcome.error;
    if (!error) {
      rec.artifacts = outcome.artifacts;
      rec.versions = outcome.versions;
      rec.execution = outcome.execution;
      break;
    }
  }
  rec.finished = new Date().toISOString();
  // A Slurm or Batch job says where it ran (the node, the container's host).
  rec.worker = last ? { host: (last as RemoteTaskOutcome).host ?? hostname(), pid: last.pid } : null;
  if (error) return fail(ctx, s, rec, error, Date.now() - started, log);
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
  error: StepError | null;
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
    return { ...empty, error: null, artifacts: outcome.reply.artifacts, versions: outcome.reply.versions, execution: outcome.reply.execution };
  }
  return { ...empty, error: (outcome as RemoteTaskOutcome).failure ?? describeFailure(task.step, outcome, launch) };
}

export function describeFailure(step: string, outcome: TaskOutcome, launch: Launch): StepError {
  if (outcome.timedOut) {
    return { kind: "timeout", message: `timed out after ${launch.timeoutMs !== null ? `${Math.round(launch.timeoutMs / 1000)}s` : "?"} and was stopped` };
  }
  if (outcome.oom) {
    const limit = launch.memoryBytes ?? getHeapStatistics().heap_size_limit;
    const more = nextSize(limit * 2);
    return {
      kind: "oom",
      message: `ran out of memory (heap limit ${launch.memoryBytes !== null ? formatSize(launch.memoryBytes) : `${formatSize(nextSize(limit))} by default`})`,
      advice:
        `give it more memory: memory: "${formatSize(more)}" in step("${step}", { ... }) of the flow file ` +
        `(--memory ${formatSize(more)} on the cell's %%step line), then resume the run`,
    };
  }
  if (outcome.reply?.type === "failed") return { kind: "error", message: `${outcome.reply.ename}: ${outcome.reply.message}` };
  const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.exitCode}`;
  return { kind: "error", message: `the worker process ${how} before the step finished` };
}

/** Rounds up to a whole number of MiB, GiB above 1 GiB, so advice reads `2G`, not `2147483650B`. */
function nextSize(bytes: number): number {
  const unit = bytes >= 2 ** 30 ? 2 ** 30 : 2 ** 20;
  return Math.ceil(bytes / unit) * unit;
}

/**
 * foreach: a worker evaluates the items (`count`), then each item runs as
 * its own task (at most `parallel` at once, and within `maxWorkers`), and
 * the runner gathers each returned name into an array in item order.
 */
async function runForeach(ctx: Ctx, s: StepDef, task: WorkerTask, launch: Launch): Promise<Attempt> {
  const counted = await runOne(ctx, s.name, { ...task, item: { count: true }, needed: [] }, launch);
  if (counted.error || counted.last?.reply?.type !== "done") return counted;
  const n = counted.last.reply.count ?? 0;
  const limit = new Semaphore(s.settings.parallel ?? n);
  let done = 0;
  ctx.options.progress.items(s.name, 0, n);
  const items = await Promise.all(
    Array.from({ length: n }, async (_, index) => {
      const release = await limit.acquire();
      try {
        const r = await runOne(ctx, `${s.name}[${index}]`, { ...task, item: { index }, needed: task.needed }, launch);
        ctx.options.progress.items(s.name, ++done, n);
        return r;
      } finally {
        release();
      }
    }),
  );
  const log = items.map((r, i) => `[item ${i}]\n${r.log}`).join("\n");
  const bad = items.findIndex((r) => r.error);
  if (bad >= 0) return { ...items[bad], log, error: { ...items[bad].error!, message: `item ${bad}: ${items[bad].error!.message}` } };
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
    error: null,
    log,
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

/**
 * A flow step worker: the process `nbscale run` keeps warm for a run and
 * hands step tasks to, one at a time, over the node IPC channel (pool.ts).
 * The runner talks to it only through `WorkerTask`/`WorkerReply`.
 *
 * For every task the worker evaluates the flow module the runner compiled
 * afresh (same code for every step of a run, even if the file is edited
 * meanwhile; a new module scope per step, so steps never share the flow's
 * top-level variables), reads its inputs from the datastore (verified
 * against their hash), runs the step, and records the execution in the
 * datastore itself: values are serialized where they live, with the
 * serializer the kernel's recorder uses, so equal values give equal SHA-256s
 * in the notebook and in the flow.
 *
 * What the step writes to process.stdout/stderr travels to the runner as
 * `output` messages on the same channel as the reply, so all of it arrives
 * before the reply and belongs to the right step.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { sep } from "node:path";
// The modules themselves, not ../store: its index also loads fsck, which a worker never needs.
import { Datastore } from "../store/datastore";
import { deserialize, describeType, serializeSourceText, type Serialized } from "../store/serialize";
import type { ArtifactRef } from "../store/artifacts";
import { evaluateFlow } from "./evaluate";
import { logLimit } from "../worker/log-limit";
import type { StepDef } from "./api";

export interface WorkerTask {
  /** Absolute flow path (module identity, record notebook) and its compiled JavaScript. */
  flowPath: string;
  jsPath: string;
  step: string;
  run: string;
  datastore: string;
  inputs: Record<string, { sha256: string; version: number | null; from: string }>;
  /** The TypeScript the step's body declares functions/classes with (recorded as source). */
  functionSources: Record<string, string>;
  code: string;
  target: string;
  memoryBytes: number | null;
  /** Returned names another step reads: these must be storable values. */
  needed: string[];
  /** foreach: run the body for this item only (`count` first asks how many items there are). */
  item?: { index: number } | { count: true };
}

/** What the runner sends: a task and the environment it runs with. */
export interface WorkerRequest {
  task: WorkerTask;
  env: Record<string, string>;
}

/** Written while the task runs; always before its reply. */
export interface WorkerOutput {
  type: "output";
  name: "stdout" | "stderr";
  text: string;
}

export type WorkerReply =
  | {
      type: "done";
      artifacts: Record<string, string>;
      versions: Record<string, number>;
      execution: string | null;
      count?: number;
    }
  | { type: "failed"; ename: string; message: string; stack: string };

/** Per stream, as a cell step's record keeps (NBSCALE_LOG_BYTES). */
const OUTPUT_CAP = logLimit(process.env);

/** The running task's captured output, or null between tasks. */
let captured: { stdout: string; stderr: string } | null = null;
/** Where captured output goes instead of the real stream (serve(): the IPC channel). */
let forward: ((name: "stdout" | "stderr", text: string) => void) | null = null;
let capturing = false;

/**
 * Captures process.stdout/stderr writes for the running task's execution
 * record. Under serve() they travel to the runner as messages (see the
 * header); a caller of runTask without serve() (a remote flow step) still
 * sees them on the real streams.
 */
function captureOutput(): void {
  if (capturing) return;
  capturing = true;
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (!captured) return write(chunk, ...rest);
      const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8");
      if (captured[name].length < OUTPUT_CAP) captured[name] += text;
      if (!forward) return write(chunk, ...rest);
      forward(name, text);
      const done = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      if (done) process.nextTick(done);
      return true;
    }) as typeof stream.write;
  }
}

const datastores = new Map<string, Promise<Datastore>>();
const compiledFlows = new Map<string, string>();

/**
 * Runs one flow task. In the warm worker (`serve`) output is already being
 * captured; in a remote job (flow/remote-worker.ts) it is captured here for
 * the execution record while still going to the job's own stdout/stderr.
 */
export async function runTask(task: WorkerTask): Promise<WorkerReply> {
  captureOutput();
  const own = captured === null;
  const output = (captured ??= { stdout: "", stderr: "" });
  try {
    return await runCaptured(task, output);
  } finally {
    if (own) captured = null;
  }
}

async function runCaptured(task: WorkerTask, output: { stdout: string; stderr: string }): Promise<WorkerReply> {
  const started = new Date();
  let ds = datastores.get(task.datastore);
  if (!ds) {
    ds = Datastore.open(task.datastore, { create: true });
    datastores.set(task.datastore, ds);
    ds.catch(() => datastores.delete(task.datastore));
  }
  let js = compiledFlows.get(task.jsPath);
  if (js === undefined) compiledFlows.set(task.jsPath, (js = readFileSync(task.jsPath, "utf8")));
  const flow = evaluateFlow(task.flowPath, js);
  const store = await ds;
  const def = flow.steps.find((s) => s.name === task.step);
  if (!def) throw new Error(`step ${task.step} is not in the flow any more`);

  const values: Record<string, unknown> = {};
  for (const [param, ref] of Object.entries(task.inputs)) values[param] = await loadInput(store, param, ref);

  if (task.item && "count" in task.item) {
    const items = Array.from(def.foreach!(values) as Iterable<unknown>);
    return { type: "done", artifacts: {}, versions: {}, execution: null, count: items.length };
  }
  let args: Record<string, unknown> = values;
  if (task.item) {
    const items = Array.from(def.foreach!(values) as Iterable<unknown>);
    args = { ...values, item: items[task.item.index], index: task.item.index };
  }
  const returned = await def.body(args);
  const outputs = checkReturned(def, returned);

  // Functions and classes are versioned as their TypeScript source, as the kernel does.
  const live: Record<string, unknown> = {};
  const asSource: Record<string, Serialized> = {};
  for (const [name, value] of Object.entries(outputs)) {
    const src = task.functionSources[name];
    if (typeof value === "function" && src !== undefined) asSource[name] = serializeSourceText(src, describeType(value));
    else live[name] = value;
  }
  const cell = task.item && "index" in task.item ? `${task.step}[${task.item.index}]` : task.step;
  const rec = await store.recordExecution({
    notebook: task.flowPath,
    cell,
    code: task.code,
    step: { name: task.step, options: { ...def.settings, run: task.run } },
    inputs: Object.fromEntries(
      Object.entries(task.inputs)
        .filter(([, r]) => r.version !== null)
        .map(([n, r]) => [n, { version: r.version, sha256: r.sha256 } as ArtifactRef]),
    ),
    outputs: live,
    serializedOutputs: asSource,
    stdout: output.stdout,
    stderr: output.stderr,
    status: "ok",
    started,
    target: task.target,
    worker: { host: hostname(), pid: process.pid, id: `flow:${task.run}` },
    // The worker's peak so far: a reused worker reports the highest of its steps.
    memory: { requestedBytes: task.memoryBytes, peakBytes: process.resourceUsage().maxRSS * 1024 },
  });
  for (const name of task.needed) {
    const out = rec.outputs[name];
    if (out && out.kind === "stub") {
      const decoded = await store.blobs.readWith(out.sha256, name, (r) => deserialize(r)).catch(() => null);
      const why = decoded && decoded.kind === "stub" ? `: ${decoded.reason}${decoded.path ? ` (at \`${decoded.path}\`)` : ""}` : "";
      throw Object.assign(new Error(`\`${name}\` (${out.type}) can't be stored, so later steps can't read it${why}`), { name: "UnserializableValueError" });
    }
  }
  return {
    type: "done",
    artifacts: Object.fromEntries(Object.entries(rec.outputs).map(([n, o]) => [n, o.sha256])),
    versions: Object.fromEntries(Object.entries(rec.outputs).map(([n, o]) => [n, o.version])),
    execution: rec.id,
  };
}

async function loadInput(ds: Datastore, param: string, ref: WorkerTask["inputs"][string]): Promise<unknown> {
  const decoded = await ds.blobs.readWith(ref.sha256, `${param} (from ${ref.from})`, (r) => deserialize(r));
  switch (decoded.kind) {
    case "v8":
      return decoded.value;
    case "source":
      throw new Error(
        `input ${param} (from ${ref.from}) is a ${decoded.type}: functions and classes don't travel between steps; ` +
          `declare it at the top level of the flow file so every step can use it`,
      );
    case "stub":
      throw new Error(`input ${param} (from ${ref.from}) was recorded as a stub (${decoded.type}: ${decoded.reason}), not a value`);
  }
}

function checkReturned(def: StepDef, returned: unknown): Record<string, unknown> {
  if (returned === undefined || returned === null) return {};
  if (typeof returned !== "object" || Array.isArray(returned)) {
    throw new Error(`step ${def.name} must return an object of named values (e.g. return { total };), got ${describeType(returned)}`);
  }
  return returned as Record<string, unknown>;
}

/**
 * Modules a step loaded from the user's files are dropped after it, so the
 * next step evaluates them afresh, as the flow file itself is; node_modules
 * packages and nbscale's own modules stay loaded (that is what keeps a warm
 * worker cheap, and packages hold no per-step state by design).
 */
function forgetUserModules(before: ReadonlySet<string>, packageDir: string): void {
  for (const key of Object.keys(require.cache)) {
    if (before.has(key) || key.includes(`${sep}node_modules${sep}`) || key.startsWith(packageDir)) continue;
    delete require.cache[key];
  }
}

async function serve(): Promise<void> {
  // Stack traces point into the flow's TypeScript. Turned on only now, after
  // nbscale's own modules are loaded: with --enable-source-maps node would
  // read the source map of every one of them (~20 ms per worker start).
  process.setSourceMapsEnabled(true);
  captureOutput();
  forward = (name, text) => process.send!({ type: "output", name, text } satisfies WorkerOutput);
  const packageDir = `${__dirname.slice(0, __dirname.lastIndexOf(`${sep}dist${sep}`))}${sep}`;
  const baseEnv = { ...process.env };
  const loaded = new Set(Object.keys(require.cache));
  let chain = Promise.resolve();
  const handle = async ({ task, env }: WorkerRequest): Promise<void> => {
    for (const k of Object.keys(process.env)) if (!(k in baseEnv)) delete process.env[k];
    Object.assign(process.env, baseEnv, env);
    captured = { stdout: "", stderr: "" };
    let reply: WorkerReply;
    try {
      reply = await runTask(task);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      process.stderr.write(`${err.stack ?? err.message}\n`);
      reply = { type: "failed", ename: err.name, message: err.message, stack: err.stack ?? "" };
    } finally {
      captured = null;
      forgetUserModules(loaded, packageDir);
    }
    await new Promise<void>((resolve) => process.send!(reply, () => resolve()));
  };
  process.on("message", (m: WorkerRequest) => {
    chain = chain.then(() => handle(m));
  });
  // The runner is gone (or done with us): nothing more will come.
  process.on("disconnect", () => process.exit(0));
}

if (require.main === module) void serve();

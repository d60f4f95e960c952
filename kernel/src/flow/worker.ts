/**
 * A flow step in a child process: the adapter `nbscale run` uses until the
 * shared worker entrypoint (kernel/src/worker/) can take flow steps; the
 * runner talks to it only through `WorkerTask`/`WorkerReply` (see pool.ts),
 * so swapping it is local to pool.ts.
 *
 * The child evaluates the flow module the runner compiled (same code for
 * every step of a run, even if the file is edited meanwhile), reads its
 * inputs from the datastore (verified against their hash), runs the step,
 * and records the execution in the datastore itself: values are serialized
 * where they live, with the serializer the kernel's recorder uses, so equal
 * values give equal SHA-256s in the notebook and in the flow.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { Datastore, deserialize, describeType, serializeSourceText, type Serialized, type ArtifactRef } from "../store";
import { evaluateFlow } from "./evaluate";
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

export type WorkerReply =
  | {
      type: "done";
      artifacts: Record<string, string>;
      versions: Record<string, number>;
      execution: string | null;
      count?: number;
    }
  | { type: "failed"; ename: string; message: string; stack: string };

export async function runTask(task: WorkerTask): Promise<WorkerReply> {
  const started = new Date();
  const captured = { stdout: "", stderr: "" };
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (captured[name].length < 8 << 20) captured[name] += typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8");
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  const ds = await Datastore.open(task.datastore, { create: true });
  const flow = evaluateFlow(task.flowPath, readFileSync(task.jsPath, "utf8"));
  const def = flow.steps.find((s) => s.name === task.step);
  if (!def) throw new Error(`step ${task.step} is not in the flow any more`);

  const values: Record<string, unknown> = {};
  for (const [param, ref] of Object.entries(task.inputs)) values[param] = await loadInput(ds, param, ref);

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
  const rec = await ds.recordExecution({
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
    stdout: captured.stdout,
    stderr: captured.stderr,
    status: "ok",
    started,
    target: task.target,
    worker: { host: hostname(), pid: process.pid, id: `flow:${task.run}` },
    memory: { requestedBytes: task.memoryBytes, peakBytes: process.resourceUsage().maxRSS * 1024 },
  });
  for (const name of task.needed) {
    const out = rec.outputs[name];
    if (out && out.kind === "stub") {
      const decoded = await ds.blobs.readWith(out.sha256, name, (r) => deserialize(r)).catch(() => null);
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

if (require.main === module) {
  process.once("message", (task: WorkerTask) => {
    runTask(task).then(
      (reply) => process.send!(reply, () => process.exit(0)),
      (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        process.stderr.write(`${err.stack ?? err.message}\n`);
        const reply: WorkerReply = { type: "failed", ename: err.name, message: err.message, stack: err.stack ?? "" };
        process.send!(reply, () => process.exit(1));
      },
    );
  });
}

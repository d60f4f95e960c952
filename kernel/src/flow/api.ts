/**
 * The flow API that exported notebooks import (`import { flow, step } from
 * "nbscale"`). A flow file builds a graph; it never runs anything itself:
 * `nbscale run FLOW.ts` loads the file, reads the graph, and runs each step
 * in a worker process.
 *
 *     const load = step("load", {}, () => {
 *       const data = [1, 2, 3];
 *       return { data };
 *     });
 *     const total = step("total", { memory: "8G", inputs: { data: load.data } }, ({ data }) => {
 *       const total = data.reduce((a, b) => a + b, 0);
 *       return { total };
 *     });
 *     export default flow("demo", [load, total]);
 *
 * A step's handle has one typed reference per returned name (`load.data`),
 * so wiring `inputs` is checked by TypeScript and the editor knows each
 * input's type. The dependencies of a step are exactly the steps its inputs
 * reference: the graph is a DAG, and independent steps run in parallel.
 *
 * This module is loaded by the flow file in the CLI and in every worker, so
 * it stays small and imports nothing heavy.
 */
import { isValidStepName } from "../magics/step";
import { parseDuration, parseSize } from "../magics/units";

export const REF: unique symbol = Symbol.for("nbscale.flow.ref") as never;
export const STEP: unique symbol = Symbol.for("nbscale.flow.step") as never;
export const FLOW: unique symbol = Symbol.for("nbscale.flow.flow") as never;

export type Target = "kernel" | "local" | "batch" | "slurm";

/** Resources and placement, as on a `%%step` line (sizes and durations as text). */
export interface StepSettings {
  /** Where the step runs unless `nbscale run --on` overrides it (default: local). */
  on?: Target;
  /** `512M`, `8G`, `64GiB`. Locally this is the worker's V8 heap limit. */
  memory?: string;
  cpu?: number;
  gpu?: number;
  /** Extra attempts after a failure. */
  retries?: number;
  /** `90s`, `10m`, `2h`: the attempt is stopped after this long. */
  timeout?: string;
  env?: Record<string, string>;
  /** foreach only: at most this many items at once. */
  parallel?: number;
  queue?: string;
  image?: string;
  partition?: string;
}

/** A value another step returns; `T` is its type. */
export interface Ref<T> {
  readonly [REF]: { step: string; name: string };
  /** Type only: never set. */
  readonly __type?: T;
}

export type RefMap = { [name: string]: Ref<unknown> };
export type Values<I> = { [K in keyof I]: I[K] extends Ref<infer T> ? T : never };

export interface StepOptions<I> extends StepSettings {
  /** Named inputs: a reference to a value another step returns. */
  inputs?: I;
}

export interface ForeachOptions<I, T> extends StepOptions<I> {
  /** The items to run the body for (the body sees `item` and `index`); each returned name becomes an array in item order. */
  foreach: (inputs: Values<I>) => Iterable<T> | ArrayLike<T>;
}

/** What the runner reads from a step handle. */
export interface StepDef {
  name: string;
  settings: StepSettings;
  /** Parameter name → the step and name it comes from. */
  inputs: Record<string, { step: string; name: string }>;
  body: (inputs: Record<string, unknown>) => unknown;
  foreach?: (inputs: Record<string, unknown>) => Iterable<unknown> | ArrayLike<unknown>;
}

export type StepHandle<O> = { readonly [K in keyof O & string]: Ref<O[K]> } & { readonly [STEP]: StepDef };

export interface Flow {
  readonly [FLOW]: true;
  readonly name: string;
  /** Every step, in the order the file defines them. */
  readonly steps: readonly StepDef[];
}

type Returned = Record<string, unknown>;

export class FlowDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlowDefinitionError";
  }
}

/** Steps in the order `step()` created them: the flow lists them in that order. */
let created = 0;
const order = new WeakMap<StepDef, number>();

export function step<I extends RefMap, T, O extends Returned>(
  name: string,
  options: ForeachOptions<I, T>,
  body: (inputs: Values<I> & { item: T; index: number }) => O | Promise<O>,
): StepHandle<{ [K in keyof O]: O[K][] }>;
export function step<I extends RefMap, O extends Returned>(name: string, options: StepOptions<I>, body: (inputs: Values<I>) => O | Promise<O>): StepHandle<O>;
export function step(
  name: string,
  options: StepOptions<RefMap> & { foreach?: (inputs: Values<RefMap>) => Iterable<unknown> | ArrayLike<unknown> },
  body: (inputs: never) => unknown,
): StepHandle<Returned> {
  if (typeof name !== "string" || !isValidStepName(name)) {
    throw new FlowDefinitionError(`step name ${JSON.stringify(name)}: use letters, digits, _ and - only`);
  }
  if (typeof body !== "function") throw new FlowDefinitionError(`step ${name}: the last argument must be the step's function`);
  const { inputs = {}, foreach, ...settings } = options ?? {};
  validateSettings(name, settings);
  const wired: StepDef["inputs"] = {};
  for (const [param, ref] of Object.entries(inputs)) {
    const target = (ref as Partial<Ref<unknown>> | undefined)?.[REF];
    if (!target) {
      throw new FlowDefinitionError(`step ${name}: input ${param} must reference another step's value (e.g. ${param}: load.${param}), got ${typeof ref}`);
    }
    wired[param] = { ...target };
  }
  const def: StepDef = {
    name,
    settings,
    inputs: wired,
    body: body as StepDef["body"],
    ...(foreach ? { foreach: foreach as StepDef["foreach"] } : {}),
  };
  order.set(def, created++);
  // Any property read is a reference to a value the step returns: outputs are
  // only known when it runs, and the runner checks the name exists then.
  return new Proxy({} as StepHandle<Returned>, {
    get(_t, key) {
      if (key === STEP) return def;
      if (typeof key !== "string" || key === "then" || key === "toJSON") return undefined;
      return { [REF]: { step: name, name: key } } satisfies Ref<unknown>;
    },
    has: (_t, key) => key === STEP,
  });
}

export function flow(name: string, steps: ReadonlyArray<StepHandle<never> | StepHandle<Returned>>): Flow {
  if (typeof name !== "string" || !isValidStepName(name)) {
    throw new FlowDefinitionError(`flow name ${JSON.stringify(name)}: use letters, digits, _ and - only`);
  }
  const byName = new Map<string, StepDef>();
  for (const handle of steps) {
    const def = (handle as { [STEP]?: StepDef } | undefined)?.[STEP];
    if (!def) throw new FlowDefinitionError(`flow ${name}: every entry must be a step(...) handle`);
    const other = byName.get(def.name);
    if (other && other !== def) throw new FlowDefinitionError(`flow ${name}: two steps are named ${def.name}; step names must be unique`);
    byName.set(def.name, def);
  }
  for (const def of byName.values()) {
    for (const [param, ref] of Object.entries(def.inputs)) {
      if (!byName.has(ref.step)) {
        throw new FlowDefinitionError(
          `step ${def.name}: input ${param} comes from step ${ref.step}, which is not in the flow's list; add it to flow("${name}", [...])`,
        );
      }
    }
  }
  const list = [...byName.values()].sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
  return { [FLOW]: true, name, steps: list };
}

export function isFlow(value: unknown): value is Flow {
  return typeof value === "object" && value !== null && (value as { [FLOW]?: unknown })[FLOW] === true;
}

const SETTING_KEYS = ["on", "memory", "cpu", "gpu", "retries", "timeout", "env", "parallel", "queue", "image", "partition"];

function validateSettings(name: string, s: StepSettings): void {
  for (const key of Object.keys(s)) {
    if (!SETTING_KEYS.includes(key)) {
      throw new FlowDefinitionError(`step ${name}: unknown option ${key}; known options: inputs, foreach, ${SETTING_KEYS.join(", ")}`);
    }
  }
  if (s.on !== undefined && !["kernel", "local", "batch", "slurm"].includes(s.on)) {
    throw new FlowDefinitionError(`step ${name}: on: ${JSON.stringify(s.on)}; expected kernel, local, batch or slurm`);
  }
  if (s.memory !== undefined && parseSize(String(s.memory)) === undefined) {
    throw new FlowDefinitionError(`step ${name}: memory: ${JSON.stringify(s.memory)}; expected a size like 512M, 8G or 64GiB`);
  }
  if (s.timeout !== undefined && parseDuration(String(s.timeout)) === undefined) {
    throw new FlowDefinitionError(`step ${name}: timeout: ${JSON.stringify(s.timeout)}; expected a duration like 90s, 10m or 2h`);
  }
  for (const key of ["cpu", "gpu", "retries", "parallel"] as const) {
    const v = s[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
      throw new FlowDefinitionError(`step ${name}: ${key}: ${JSON.stringify(v)}; expected a whole number`);
    }
  }
}

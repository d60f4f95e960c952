/**
 * Loading a flow file: TypeScript → JavaScript (compile.ts, or the compile
 * cache of compile-cache.ts when the source is unchanged), evaluation as a
 * CommonJS module that lives at the flow's own path (so its relative imports
 * and node_modules resolve as the user expects), and a static reading of the
 * source that gives every step its code text and code hash.
 *
 * Code hash: SHA-256 over the step's own function text (and its foreach
 * function) plus the flow's shared code: every top-level statement that is
 * not a step or the flow list (imports, helper functions, classes, types).
 * Comments between statements don't count; a change to any helper
 * re-runs every step, which is conservative but never stale. The hash also
 * covers the local modules the step's code runs — files of the flow's folder
 * it imports, transitively (local-imports.ts) — so an edit to `./lib` re-runs
 * the steps that use it; a flow without local imports hashes as before.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Flow, FlowDefinitionError, StepDef } from "./api";
import { evaluateFlow, FlowLoadError } from "./evaluate";
import { cacheDir, cacheKey, readCompiled, writeCompiled } from "./compile-cache";
import type { CompiledFlow } from "./compile";
import { importsUsedBy, LocalModules } from "./local-imports";

export { evaluateFlow, FlowLoadError };

export interface StepSource {
  /** The step function's text, as written in the flow file. */
  text: string;
  /** The statements of its body (the cell code plus the final `return`). */
  bodyText: string;
  foreachText: string | null;
  /** 1-based line of the step call in the flow file. */
  line: number;
  /** TypeScript source of the functions and classes its body declares (recorded as source, as the kernel does). */
  functionSources: Record<string, string>;
  codeSha256: string;
  /** SHA-256 of each local module the step's code runs, by path relative to the flow's folder (in its code hash). */
  modules: Record<string, string>;
}

export interface LoadedFlow {
  path: string;
  source: string;
  sourceSha256: string;
  js: string;
  flow: Flow;
  sharedSha256: string;
  steps: Map<string, StepSource>;
  /** True when the compiled flow came from the compile cache (compile-cache.ts). */
  cached: boolean;
}

export interface LoadOptions {
  /** Compile cache directory; null turns the cache off. Default: cacheDir(). */
  cacheDir?: string | null;
}

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** The compiler module, loaded only when needed (it costs ~0.2 s). */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const compiler = (): typeof import("./compile") => require("./compile") as typeof import("./compile");

export function loadFlow(file: string, options: LoadOptions = {}): LoadedFlow {
  const path = resolve(file);
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (e) {
    throw new FlowLoadError(`cannot read flow file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const dir = options.cacheDir === undefined ? cacheDir() : options.cacheDir;
  const key = dir === null ? null : cacheKey(path, source);
  let compiled: CompiledFlow | null = dir !== null && key !== null ? readCompiled(dir, key) : null;
  const cached = compiled !== null;
  if (!compiled) {
    compiled = compiler().compileFlow(path, source);
    if (dir !== null && key !== null) writeCompiled(dir, key, compiled);
  }
  let flow: Flow;
  try {
    flow = evaluateFlow(path, compiled.js);
  } catch (e) {
    if (e instanceof FlowLoadError) throw e;
    const why = e instanceof FlowDefinitionError ? e.message : ((e as Error)?.stack ?? String(e));
    throw new FlowLoadError(`loading ${file} failed: ${why}`);
  }
  const sharedSha256 = sha256(compiled.shared);
  const steps = new Map<string, StepSource>();
  const localModules = new LocalModules(path);
  for (const def of flow.steps) {
    const call = Object.hasOwn(compiled.calls, def.name) ? compiled.calls[def.name] : undefined;
    // A step built dynamically (not a literal `step("name", …)` call): fall back to the compiled text.
    const text = call?.text ?? def.body.toString();
    const foreachText = call ? call.foreachText : def.foreach ? def.foreach.toString() : null;
    const bodyText = call?.bodyText ?? text;
    // A step built dynamically has only compiled text, where imports are renamed: it depends on all of them.
    const used = call
      ? [...compiled.sharedImports, ...importsUsedBy(`${text}\n${foreachText ?? ""}`, compiled.imports)]
      : compiled.imports.map((i) => i.specifier);
    const modules = localModules.hashes([...new Set(used)]);
    const hashed = { shared: sharedSha256, text, foreach: foreachText, ...(Object.keys(modules).length > 0 ? { modules } : {}) };
    steps.set(def.name, {
      text,
      bodyText,
      foreachText,
      line: call?.line ?? 0,
      functionSources: call?.functionSources ?? compiler().functionSourcesOf(bodyText),
      codeSha256: sha256(JSON.stringify(hashed)),
      modules,
    });
  }
  return { path, source, sourceSha256: sha256(source), js: compiled.js, flow, sharedSha256, steps, cached };
}

/** Steps in an order where every step comes after the steps it reads from. */
export function topoOrder(steps: readonly StepDef[]): StepDef[] {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const out: StepDef[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (s: StepDef, path: string[]): void => {
    const st = state.get(s.name);
    if (st === "done") return;
    if (st === "visiting") throw new FlowLoadError(`steps depend on each other in a cycle: ${[...path, s.name].join(" → ")}`);
    state.set(s.name, "visiting");
    for (const dep of depsOf(s)) {
      const d = byName.get(dep);
      if (d) visit(d, [...path, s.name]);
    }
    state.set(s.name, "done");
    out.push(s);
  };
  for (const s of steps) visit(s, []);
  return out;
}

export function depsOf(s: StepDef): string[] {
  return [...new Set(Object.values(s.inputs).map((r) => r.step))];
}

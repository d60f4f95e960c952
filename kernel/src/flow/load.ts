/**
 * Loading a flow file: TypeScript → JavaScript (transpile only, like the
 * kernel: no type check stands between the user and a run), evaluation as a
 * CommonJS module that lives at the flow's own path (so its relative imports
 * and node_modules resolve as the user expects), and a static reading of the
 * source that gives every step its code text and code hash.
 *
 * Code hash: SHA-256 over the step's own function text (and its foreach
 * function) plus the flow's shared code: every top-level statement that is
 * not a step or the flow list (imports, helper functions, classes, types).
 * Comments between statements don't count; a change to any helper
 * re-runs every step, which is conservative but never stale.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ts } from "../step/typescript";
import { analyzeCellDefinitions } from "../step/analysis";
import { Flow, FlowDefinitionError, StepDef } from "./api";
import { evaluateFlow, FlowLoadError } from "./evaluate";

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
}

export interface LoadedFlow {
  path: string;
  source: string;
  sourceSha256: string;
  js: string;
  flow: Flow;
  sharedSha256: string;
  steps: Map<string, StepSource>;
}

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

export function transpileFlow(path: string, source: string): string {
  const out = ts.transpileModule(source, {
    fileName: path,
    reportDiagnostics: true,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const lines = errors.slice(0, 5).map((d) => {
      const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
      return `  ${path}${at ? `:${at.line + 1}:${at.character + 1}` : ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
    throw new FlowLoadError(`${path} has syntax errors:\n${lines.join("\n")}`);
  }
  return out.outputText;
}

export function loadFlow(file: string): LoadedFlow {
  const path = resolve(file);
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (e) {
    throw new FlowLoadError(`cannot read flow file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const js = transpileFlow(path, source);
  let flow: Flow;
  try {
    flow = evaluateFlow(path, js);
  } catch (e) {
    if (e instanceof FlowLoadError) throw e;
    const why = e instanceof FlowDefinitionError ? e.message : (e as Error)?.stack ?? String(e);
    throw new FlowLoadError(`loading ${file} failed: ${why}`);
  }
  const { shared, calls } = readSource(path, source);
  const sharedSha256 = sha256(shared);
  const steps = new Map<string, StepSource>();
  for (const def of flow.steps) {
    const call = calls.get(def.name);
    // A step built dynamically (not a literal `step("name", …)` call): fall back to the compiled text.
    const text = call?.text ?? def.body.toString();
    const foreachText = call ? call.foreachText : def.foreach ? def.foreach.toString() : null;
    const bodyText = call?.bodyText ?? text;
    steps.set(def.name, {
      text,
      bodyText,
      foreachText,
      line: call?.line ?? 0,
      functionSources: functionSourcesOf(bodyText),
      codeSha256: sha256(JSON.stringify({ shared: sharedSha256, text, foreach: foreachText })),
    });
  }
  return { path, source, sourceSha256: sha256(source), js, flow, sharedSha256, steps };
}

interface CallInfo {
  text: string;
  bodyText: string;
  foreachText: string | null;
  line: number;
}

/** Finds `step("name", options, fn)` calls and the shared (non-step) top-level code. */
export function readSource(path: string, source: string): { shared: string; calls: Map<string, CallInfo> } {
  const sf = ts.createSourceFile(path, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const stepNames = new Set<string>();
  const flowNames = new Set<string>();
  for (const st of sf.statements) {
    if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier)) continue;
    if (st.moduleSpecifier.text !== "nbscale" && st.moduleSpecifier.text !== "nbscale/flow") continue;
    const b = st.importClause?.namedBindings;
    if (!b || !ts.isNamedImports(b)) continue;
    for (const el of b.elements) {
      const imported = (el.propertyName ?? el.name).text;
      if (imported === "step") stepNames.add(el.name.text);
      if (imported === "flow") flowNames.add(el.name.text);
    }
  }
  const calls = new Map<string, CallInfo>();
  const isCallTo = (n: ts.Node, names: Set<string>): n is ts.CallExpression =>
    ts.isCallExpression(n) && ts.isIdentifier(n.expression) && names.has(n.expression.text);
  let containsStepOrFlow = false;
  const visit = (n: ts.Node): void => {
    if (isCallTo(n, flowNames)) containsStepOrFlow = true;
    if (isCallTo(n, stepNames)) {
      containsStepOrFlow = true;
      const [nameArg, options] = n.arguments;
      const fn = n.arguments[n.arguments.length - 1];
      if (nameArg && ts.isStringLiteralLike(nameArg) && fn && (ts.isArrowFunction(fn) || ts.isFunctionExpression(fn))) {
        let foreachText: string | null = null;
        if (options && ts.isObjectLiteralExpression(options)) {
          for (const p of options.properties) {
            if (p.name && ts.isIdentifier(p.name) && p.name.text === "foreach") foreachText = p.getText(sf);
          }
        }
        const body = fn.body;
        const bodyText = ts.isBlock(body) ? source.slice(body.getStart(sf) + 1, body.getEnd() - 1) : body.getText(sf);
        calls.set(nameArg.text, { text: fn.getText(sf), bodyText, foreachText, line: sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1 });
      }
    }
    ts.forEachChild(n, visit);
  };
  const shared: string[] = [];
  for (const st of sf.statements) {
    containsStepOrFlow = false;
    visit(st);
    if (!containsStepOrFlow) shared.push(st.getText(sf));
  }
  return { shared: shared.join("\n"), calls };
}

/** Functions and classes a body declares, as the kernel records them (TypeScript source). */
function functionSourcesOf(bodyText: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of analyzeCellDefinitions(bodyText).declarations) {
    if ((d.kind === "function" || d.kind === "class") && d.source) out[d.name] = d.source;
  }
  return out;
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

/**
 * The part of loading a flow that needs the TypeScript compiler:
 * TypeScript → JavaScript (transpile only, like the kernel: no type check
 * stands between the user and a run) and the static reading of the source
 * that gives every step its code text. Loading `typescript` costs ~0.2 s,
 * so load.ts reaches this module only when the compile cache misses.
 */
import { ts } from "../step/typescript";
import { analyzeCellDefinitions } from "../step/analysis";
import { FlowLoadError } from "./evaluate";

/** What a `step("name", options, fn)` call in the source says. */
export interface CallInfo {
  text: string;
  bodyText: string;
  foreachText: string | null;
  line: number;
  /** TypeScript source of the functions and classes its body declares. */
  functionSources: Record<string, string>;
}

/** Everything derived from the source text alone: what the compile cache keeps. */
export interface CompiledFlow {
  js: string;
  /** Top-level statements that are not steps or the flow list. */
  shared: string;
  calls: Record<string, CallInfo>;
}

export const COMPILER_OPTIONS = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
  inlineSourceMap: true,
  inlineSources: true,
};

export function compileFlow(path: string, source: string): CompiledFlow {
  const js = transpileFlow(path, source);
  const { shared, calls } = readSource(path, source);
  return { js, shared, calls: Object.fromEntries(calls) };
}

export function transpileFlow(path: string, source: string): string {
  const out = ts.transpileModule(source, { fileName: path, reportDiagnostics: true, compilerOptions: COMPILER_OPTIONS });
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
        calls.set(nameArg.text, {
          text: fn.getText(sf),
          bodyText,
          foreachText,
          line: sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1,
          functionSources: functionSourcesOf(bodyText),
        });
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
export function functionSourcesOf(bodyText: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of analyzeCellDefinitions(bodyText).declarations) {
    if ((d.kind === "function" || d.kind === "class") && d.source) out[d.name] = d.source;
  }
  return out;
}

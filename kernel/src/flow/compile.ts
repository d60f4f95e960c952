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
import { importsUsedBy, isRelative, type LocalImport } from "./local-imports";

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
  /** The flow file's relative imports (local modules), with the names each binds. */
  imports: LocalImport[];
  /** Those of them that every step depends on: used by shared code, side-effect imports, re-exports. */
  sharedImports: string[];
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
  const { shared, calls, imports, sharedImports } = readSource(path, source);
  return { js, shared, calls: Object.fromEntries(calls), imports, sharedImports };
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
export function readSource(path: string, source: string): { shared: string; calls: Map<string, CallInfo>; imports: LocalImport[]; sharedImports: string[] } {
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
  const sharedCode: string[] = [];
  const imports: LocalImport[] = [];
  for (const st of sf.statements) {
    containsStepOrFlow = false;
    visit(st);
    if (containsStepOrFlow) continue;
    shared.push(st.getText(sf));
    const local = localImportOf(st);
    if (local) imports.push(local);
    else sharedCode.push(st.getText(sf));
  }
  return { shared: shared.join("\n"), calls, imports, sharedImports: importsUsedBy(sharedCode.join("\n"), imports) };
}

/** A top-level `import … from "./x"`, `import x = require("./x")` or `export … from "./x"`. */
function localImportOf(st: ts.Statement): LocalImport | null {
  if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier) && isRelative(st.moduleSpecifier.text)) {
    const names: string[] = [];
    const c = st.importClause;
    if (c?.name) names.push(c.name.text);
    const b = c?.namedBindings;
    if (b && ts.isNamespaceImport(b)) names.push(b.name.text);
    if (b && ts.isNamedImports(b)) for (const el of b.elements) names.push(el.name.text);
    return { specifier: st.moduleSpecifier.text, names };
  }
  if (
    ts.isImportEqualsDeclaration(st) &&
    ts.isExternalModuleReference(st.moduleReference) &&
    ts.isStringLiteral(st.moduleReference.expression) &&
    isRelative(st.moduleReference.expression.text)
  ) {
    return { specifier: st.moduleReference.expression.text, names: [st.name.text] };
  }
  if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) && isRelative(st.moduleSpecifier.text)) {
    return { specifier: st.moduleSpecifier.text, names: [] };
  }
  return null;
}

/** Functions and classes a body declares, as the kernel records them (TypeScript source). */
export function functionSourcesOf(bodyText: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of analyzeCellDefinitions(bodyText).declarations) {
    if ((d.kind === "function" || d.kind === "class") && d.source) out[d.name] = d.source;
  }
  return out;
}

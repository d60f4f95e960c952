/**
 * Packages a step for a worker: the shipped declarations (closure) and the
 * body, each transpiled on its own, wrapped into one program whose layout is
 * kept so a worker's stack trace can be mapped back to cells and lines.
 *
 * The program (one function expression):
 *
 *   (async function (__nbscale, require, exports, module) {
 *   let a, b;                                 ← inputs, assigned after the closure
 *   …closure items…                           ← functions, classes, imports
 *   ({ a, b } = await __nbscale.inputs(…));   ← classes exist now: instances get prototypes
 *   return await (async function () {         ← the body in its own scope
 *   …body…
 *   ;return { total: … };
 *   })();
 *   })
 *
 * The kernel type-checked the body against the session before packaging, so
 * `transpileModule` (no type information) is enough here.
 */
import { ts } from "./typescript";
import { LineMap } from "../session/line-map";
import { analyzeCellDefinitions, type ClosureItem, type HistoryCell, type StepAnalysis } from "./analysis";
import type { StepProgram } from "../worker/events";
import type { ShippedModules } from "./local-modules";

// A function, not a constant: reading `ts` when this module loads would load the compiler (see typescript.ts).
const compilerOptions = (): ts.CompilerOptions => ({
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2022,
  esModuleInterop: true,
});

export interface Region {
  /** 0-based first line of the region in the program, and one past its last. */
  start: number;
  end: number;
  map: LineMap;
  /** The cell the region's code comes from; null for the step body. */
  cellId: string | null;
  /** 0-based line of the region's first line in that cell. */
  cellLine: number;
}

export interface StepPackage {
  program: StepProgram;
  regions: Region[];
  /** Names the body declares that come back as values. */
  valueOutputs: string[];
  /** Input names, in program order. */
  inputs: string[];
}

export function transpile(source: string): string {
  return ts.transpileModule(source, { compilerOptions: compilerOptions(), reportDiagnostics: false }).outputText.replace(/\n+$/, "");
}

let programCounter = 0;

export function packageStep(body: string, analysis: StepAnalysis, history: readonly HistoryCell[] = [], modules?: ShippedModules): StepPackage {
  const lines: string[] = [];
  const regions: Region[] = [];
  const inputs = analysis.inputs.filter((i) => !i.typeOnly).map((i) => i.name);
  const valueOutputs = analysis.outputs.filter((o) => o.value && o.kind === "value").map((o) => o.name);

  lines.push("(async function (__nbscale, require, exports, module) {");
  lines.push(inputs.length > 0 ? `let ${inputs.join(", ")};` : "");
  const classes: string[] = [];
  for (const item of analysis.closure) {
    if (item.typeOnly || item.kind === "type") continue;
    if (item.kind === "class") classes.push(...item.names);
    const js = transpile(itemSource(item));
    const start = lines.length;
    lines.push(...js.split("\n"));
    regions.push({ start, end: lines.length, map: new LineMap(js, item.source), cellId: item.cellId, cellLine: lineInCell(item, history) });
  }
  const resolve = classes.length > 0 ? `(n) => ({ ${classes.map((c) => `${c}: ${c}`).join(", ")} })[n]` : "() => undefined";
  lines.push(inputs.length > 0 ? `({ ${inputs.join(", ")} } = await __nbscale.inputs(${resolve}));` : `await __nbscale.inputs(${resolve});`);
  lines.push("return await (async function () {");
  const bodyJs = transpile(body);
  const bodyStart = lines.length;
  lines.push(...bodyJs.split("\n"));
  regions.push({ start: bodyStart, end: lines.length, map: new LineMap(bodyJs, body), cellId: null, cellLine: 0 });
  const ret = valueOutputs.map((n) => `${n}: typeof ${n} === "undefined" ? undefined : ${n}`).join(", ");
  lines.push(`;return { ${ret} };`);
  lines.push("})();");
  lines.push("})");
  const filename = `nbscale-step-${process.pid}-${++programCounter}.js`;
  const program = { filename, source: lines.join("\n"), ...(modules && Object.keys(modules).length > 0 ? { modules } : {}) };
  return { program, regions, valueOutputs, inputs };
}

function lineInCell(item: ClosureItem, history: readonly HistoryCell[]): number {
  const cell = history[item.cellIndex];
  if (!cell) return 0;
  const d = analyzeCellDefinitions(cell.code).declarations.find((x) => x.source === item.source && item.names.includes(x.name));
  return d?.line ?? 0;
}

/**
 * An import shipped with a step becomes `const` bindings of the names it
 * imports: the body is compiled on its own, so it refers to `clean`, not to
 * the `clean_1.clean` a CommonJS transpile of the import would leave.
 * (Type-only imports never get here: they are `typeOnly`.)
 */
function itemSource(item: ClosureItem): string {
  if (item.kind !== "import") return item.source;
  const sf = ts.createSourceFile("import.ts", item.source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const wanted = new Set(item.names);
  for (const st of sf.statements) {
    if (ts.isImportEqualsDeclaration(st) && ts.isExternalModuleReference(st.moduleReference) && ts.isStringLiteral(st.moduleReference.expression)) {
      out.push(`const ${st.name.text} = require(${JSON.stringify(st.moduleReference.expression.text)});`);
      continue;
    }
    if (!ts.isImportDeclaration(st) || !ts.isStringLiteral(st.moduleSpecifier)) {
      out.push(st.getText(sf));
      continue;
    }
    const req = `require(${JSON.stringify(st.moduleSpecifier.text)})`;
    const c = st.importClause;
    if (!c) {
      out.push(`${req};`);
      continue;
    }
    if (c.name && wanted.has(c.name.text)) out.push(`const ${c.name.text} = ((m: any) => (m && m.__esModule ? m.default : m))(${req});`);
    const nb = c.namedBindings;
    if (nb && ts.isNamespaceImport(nb) && wanted.has(nb.name.text)) {
      out.push(`const ${nb.name.text} = ((m: any) => (m && m.__esModule ? m : Object.assign(Object.create(null), m, { default: m })))(${req});`);
    }
    if (nb && ts.isNamedImports(nb)) {
      const els = nb.elements.filter((e) => !e.isTypeOnly && wanted.has(e.name.text));
      if (els.length > 0) {
        out.push(
          `const { ${els.map((e) => (e.propertyName ? `${JSON.stringify(e.propertyName.text)}: ${e.name.text}` : e.name.text)).join(", ")} } = ${req} as any;`,
        );
      }
    }
  }
  return out.join("\n");
}

/**
 * The TypeScript type of each name in a declaration output (`declare const
 * total: number;`), as the kernel binds it. The first declaration of a name
 * wins: the checker lists the cell's own declarations before older ones.
 */
export function declaredTypes(declOutput: string, names: readonly string[]): Record<string, string> {
  const wanted = new Set(names);
  const types: Record<string, string> = {};
  const sf = ts.createSourceFile("decl.d.ts", declOutput, ts.ScriptTarget.ES2022, true);
  for (const stmt of sf.statements) {
    if (!ts.isVariableStatement(stmt)) continue;
    for (const d of stmt.declarationList.declarations) {
      if (!ts.isIdentifier(d.name)) continue;
      const name = d.name.text;
      if (!wanted.has(name) || name in types) continue;
      if (d.type) types[name] = d.type.getText(sf);
      else if (d.initializer) types[name] = literalType(d.initializer.getText(sf));
    }
  }
  return types;
}

/** `declare const base = 10;` — a const's literal initializer is its type. */
function literalType(text: string): string {
  return /^(-?\d[\d_.eE+-]*n?|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|true|false)$/.test(text) ? text : "any";
}

/** The step's code as shipped: its body and the imports it carries, for finding the local modules they need. */
export function shippedCode(body: string, analysis: StepAnalysis): string[] {
  return [body, ...analysis.closure.filter((c) => c.kind === "import" && !c.typeOnly).map((c) => c.source)];
}

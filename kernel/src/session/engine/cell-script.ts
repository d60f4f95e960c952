/**
 * Turns a cell's emitted JavaScript (an ES module) into a classic script
 * whose top-level names are the notebook's real bindings (bindings.ts):
 *
 *   import { a } from "m"        → a = __nbscale__.imports[0].a;   (loaded before the script runs)
 *   const x = 1, { y } = o       → x = 1, ({ y } = o);
 *   let z;                       → z = undefined;
 *   function f() {}              → f = function f() {};            (hoisted to the top)
 *   class C {}                   → C = class C {};
 *   var v / for (var i …)        → v / for (i …)                   (anywhere outside functions)
 *   export …                     → the declaration itself; `export {…}` is dropped
 *
 * The script declares nothing, so running a cell again (or a later cell
 * declaring the same name) is an assignment and never a redeclaration
 * error. A cell with top-level `await` runs its statements in an async
 * arrow function, which reads and writes the same bindings.
 */
import { ts } from "../../step/typescript";
import { bindingNames as bindingIdentifiers } from "../../step/scope";

export interface ImportBinding {
  local: string;
  /** `default`, `*` (namespace) or the exported name. */
  imported: string;
}

export interface RuntimeImport {
  specifier: string;
  bindings: ImportBinding[];
}

export interface CellScript {
  script: string;
  /** 0-based line of the emitted JavaScript for each 0-based script line. */
  jsLines: number[];
  /** Names the script assigns at top level: they must be declared before it runs. */
  names: string[];
  imports: RuntimeImport[];
  isAsync: boolean;
  /** The script ends by storing its last expression's value in `__nbscale__.last`. */
  hasValue: boolean;
  /** Identifiers the cell's functions and classes use (later cells must not localise them). */
  functionRefs: string[];
  /** Names the cell keeps in locals while it runs, copied to their bindings when it ends. */
  localized: string[];
}

/** The script-level object through which scripts reach the kernel (imports, last value). */
export const RUNTIME = "__nbscale__";

interface Piece {
  text: string;
  line: number;
}

export interface ScriptOptions {
  /** Names functions of earlier cells use: they must stay bindings while any cell runs. */
  captured?: ReadonlySet<string>;
}

export function toCellScript(js: string, opts: ScriptOptions = {}): CellScript {
  const sf = ts.createSourceFile("cell.js", js, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const lineOf = (pos: number) => sf.getLineAndCharacterOfPosition(pos).line;
  const names = new Set<string>();
  const imports: RuntimeImport[] = [];
  const head: Piece[] = [];
  const body: Piece[] = [];
  const edits = new VarEdits(sf, names);
  let hasValue = false;
  const lexical = new Set<string>();

  const statements = sf.statements.filter(
    (s) => !ts.isExportDeclaration(s) && !(ts.isExpressionStatement(s) && ts.isStringLiteral(s.expression) && s.expression.text === "use strict"),
  );
  const last = statements[statements.length - 1];

  for (const st of statements) {
    const line = lineOf(st.getStart(sf));
    if (ts.isImportDeclaration(st)) {
      const imp = runtimeImport(st);
      if (imp) {
        const k = imports.push(imp) - 1;
        for (const b of imp.bindings) {
          names.add(b.local);
          head.push({ text: `${b.local} = ${RUNTIME}.imports[${k}][${JSON.stringify(b.local)}];`, line });
        }
        if (imp.bindings.length === 0) head.push({ text: "", line });
      }
      continue;
    }
    if (ts.isFunctionDeclaration(st) && st.name && st.body) {
      names.add(st.name.text);
      head.push({ text: `${st.name.text} = ${edits.text(st, stripModifiers(st, sf))};`, line });
      continue;
    }
    if (ts.isClassDeclaration(st) && st.name) {
      names.add(st.name.text);
      body.push({ text: `${st.name.text} = ${edits.text(st, stripModifiers(st, sf))};`, line });
      continue;
    }
    if (ts.isVariableStatement(st)) {
      if (st.declarationList.flags & ts.NodeFlags.BlockScoped) {
        for (const d of st.declarationList.declarations) bindingNames(d.name).forEach((n) => lexical.add(n));
      }
      body.push({ text: declarationAsAssignment(st.declarationList, edits, names), line });
      continue;
    }
    if ((ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st)) && !st.name) {
      // `export default function () {}` / `export default class {}`: a value, like `export default expr`.
      const expr = edits.text(st, stripModifiers(st, sf));
      body.push({ text: st === last ? `${RUNTIME}.last = (${expr});` : `(${expr});`, line });
      hasValue ||= st === last;
      continue;
    }
    if (ts.isExportAssignment(st)) {
      const expr = edits.text(st.expression);
      body.push({ text: st === last ? `${RUNTIME}.last = (${expr});` : `(${expr});`, line });
      hasValue ||= st === last;
      continue;
    }
    if (st === last && ts.isExpressionStatement(st)) {
      body.push({ text: `${RUNTIME}.last = (${edits.text(st.expression)});`, line });
      hasValue = true;
      continue;
    }
    body.push({ text: edits.text(st), line });
  }

  const isAsync = statements.some((s) => !ts.isImportDeclaration(s) && !ts.isFunctionDeclaration(s) && hasTopLevelAwait(s));
  const functionRefs = identifiersInFunctions(sf);
  const usesEval = /\beval\b|\bwith\s*\(/.test(js);
  // A name only this cell's top-level code touches can live in a local while the cell runs — V8 keeps
  // locals in registers, where a script-scope binding is a memory cell (and, before V8 12.6, a boxed number
  // on every write). The binding gets the local's value when the cell ends, by return or by throw.
  const localized = usesEval ? [] : [...lexical].filter((n) => !functionRefs.has(n) && !opts.captured?.has(n));
  const out: string[] = [];
  const jsLines: number[] = [];
  const emit = (p: Piece) => {
    const parts = p.text.split("\n");
    parts.forEach((t, i) => {
      out.push(t);
      jsLines.push(p.line + i);
    });
  };
  head.forEach(emit);
  const firstLine = body[0]?.line ?? 0;
  const lastLine = body[body.length - 1]?.line ?? 0;
  if (localized.length > 0) {
    const params = localized.join(", ");
    const inner = localized.map((n) => `${n}$nb`).join(", ");
    out.push(`${RUNTIME}.copyOut = (${inner}) => { ${localized.map((n) => `${n} = ${n}$nb;`).join(" ")} };`);
    jsLines.push(firstLine);
    out.push(`(${isAsync ? "async " : ""}function (${params}) { try {`);
    jsLines.push(firstLine);
    body.forEach(emit);
    out.push(`} finally { ${RUNTIME}.copyOut(${params}); } })(${params});`);
    jsLines.push(lastLine);
  } else if (isAsync) {
    out.push("(async () => {");
    jsLines.push(firstLine);
    body.forEach(emit);
    out.push("})();");
    jsLines.push(lastLine);
  } else {
    body.forEach(emit);
  }
  // An async body's promise is the script's completion value, which the executor awaits.
  return { script: out.join("\n"), jsLines, names: [...names], imports, isAsync, hasValue, functionRefs: [...functionRefs], localized };
}

/** Identifiers used inside the functions and classes of a piece of code (a superset of what they capture). */
function identifiersInFunctions(sf: ts.SourceFile): Set<string> {
  const out = new Set<string>();
  const collect = (n: ts.Node) => {
    if (ts.isIdentifier(n)) out.add(n.text);
    ts.forEachChild(n, collect);
  };
  const visit = (n: ts.Node) => {
    if (isFunctionLike(n)) {
      ts.forEachChild(n, collect);
      return;
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

function stripModifiers(node: ts.FunctionDeclaration | ts.ClassDeclaration, sf: ts.SourceFile): { start: number } {
  // `export`/`default` come first; the expression form starts at `async`/`function`/`class`/decorators.
  const mods = node.modifiers ?? [];
  let start = node.getStart(sf);
  for (const m of mods) {
    if (m.kind === ts.SyntaxKind.ExportKeyword || m.kind === ts.SyntaxKind.DefaultKeyword) start = m.getEnd();
  }
  return { start };
}

function runtimeImport(st: ts.ImportDeclaration): RuntimeImport | null {
  if (!ts.isStringLiteral(st.moduleSpecifier)) return null;
  const clause = st.importClause;
  if (clause?.isTypeOnly) return null;
  const bindings: ImportBinding[] = [];
  if (clause?.name) bindings.push({ local: clause.name.text, imported: "default" });
  const nb = clause?.namedBindings;
  if (nb && ts.isNamespaceImport(nb)) bindings.push({ local: nb.name.text, imported: "*" });
  if (nb && ts.isNamedImports(nb)) {
    for (const el of nb.elements) {
      if (el.isTypeOnly) continue;
      bindings.push({ local: el.name.text, imported: (el.propertyName ?? el.name).text });
    }
  }
  return { specifier: st.moduleSpecifier.text, bindings };
}

function declarationAsAssignment(list: ts.VariableDeclarationList, edits: VarEdits, names: Set<string>): string {
  const isVar = (list.flags & (ts.NodeFlags.Let | ts.NodeFlags.Const)) === 0;
  const parts: string[] = [];
  for (const d of list.declarations) {
    for (const n of bindingNames(d.name)) names.add(n);
    if (d.initializer) {
      const init = edits.text(d.initializer);
      parts.push(ts.isIdentifier(d.name) ? `${d.name.text} = ${init}` : `(${edits.text(d.name)} = ${init})`);
    } else if (!isVar && ts.isIdentifier(d.name)) {
      parts.push(`${d.name.text} = undefined`);
    }
  }
  return parts.length > 0 ? `${parts.join(", ")};` : "";
}

/** The names a binding pattern declares (`{ a, b: [c] }` → a, c). */
export function bindingNames(name: ts.BindingName): string[] {
  return bindingIdentifiers(name).map((id) => id.text);
}

function isFunctionLike(n: ts.Node): boolean {
  return (
    ts.isFunctionDeclaration(n) ||
    ts.isFunctionExpression(n) ||
    ts.isArrowFunction(n) ||
    ts.isMethodDeclaration(n) ||
    ts.isConstructorDeclaration(n) ||
    ts.isGetAccessorDeclaration(n) ||
    ts.isSetAccessorDeclaration(n) ||
    ts.isClassStaticBlockDeclaration(n) ||
    ts.isClassLike(n)
  );
}

export function hasTopLevelAwait(node: ts.Node): boolean {
  let found = false;
  const visit = (n: ts.Node) => {
    if (found) return;
    if (ts.isAwaitExpression(n) || (ts.isForOfStatement(n) && n.awaitModifier)) {
      found = true;
      return;
    }
    if (isFunctionLike(n)) return;
    ts.forEachChild(n, visit);
  };
  visit(node);
  return found;
}

/**
 * `var` declarations nested in top-level blocks and loops are top-level
 * names too; V8 would refuse them next to a binding of the same name, so
 * they become assignments wherever they are (outside functions).
 */
class VarEdits {
  constructor(
    private readonly sf: ts.SourceFile,
    private readonly names: Set<string>,
  ) {}

  /** The node's text from `from.start` (default: its start), with nested `var`s rewritten. */
  text(node: ts.Node, from?: { start: number }): string {
    const start = from?.start ?? node.getStart(this.sf);
    const end = node.getEnd();
    const edits: Array<{ start: number; end: number; text: string }> = [];
    const visit = (n: ts.Node) => {
      if (isFunctionLike(n) && n !== node) return;
      if (ts.isVariableStatement(n) && isVarList(n.declarationList)) {
        edits.push({ start: n.getStart(this.sf), end: n.getEnd(), text: declarationAsAssignment(n.declarationList, this, this.names) });
        return;
      }
      if ((ts.isForStatement(n) && n.initializer) || ts.isForInStatement(n) || ts.isForOfStatement(n)) {
        const init = n.initializer;
        if (init && ts.isVariableDeclarationList(init) && isVarList(init)) {
          edits.push({ start: init.getStart(this.sf), end: init.getEnd(), text: varListAsExpression(init, this, this.names) });
          ts.forEachChild(n, (c) => (c === init ? undefined : visit(c)));
          return;
        }
      }
      ts.forEachChild(n, visit);
    };
    // The node itself may be a function or class (hoisted declarations): look inside it only for its own text.
    if (isFunctionLike(node)) {
      return this.sf.text.slice(start, end);
    }
    visit(node);
    let out = "";
    let at = start;
    for (const e of edits.sort((a, b) => a.start - b.start)) {
      if (e.start < at) continue;
      out += this.sf.text.slice(at, e.start) + e.text;
      at = e.end;
    }
    return out + this.sf.text.slice(at, end);
  }
}

function isVarList(list: ts.VariableDeclarationList): boolean {
  return (list.flags & (ts.NodeFlags.Let | ts.NodeFlags.Const | ts.NodeFlags.Using | ts.NodeFlags.AwaitUsing)) === 0;
}

/** `var i = 0, j` in a `for` head → `i = 0, j = j` (an expression; `for (i of …)` needs the bare target). */
function varListAsExpression(list: ts.VariableDeclarationList, edits: VarEdits, names: Set<string>): string {
  const parts: string[] = [];
  for (const d of list.declarations) {
    for (const n of bindingNames(d.name)) names.add(n);
    const target = ts.isIdentifier(d.name) ? d.name.text : `${edits.text(d.name)}`;
    parts.push(
      d.initializer ? `${ts.isIdentifier(d.name) ? target : `(${target}`} = ${edits.text(d.initializer)}${ts.isIdentifier(d.name) ? "" : ")"}` : target,
    );
  }
  return parts.join(", ");
}

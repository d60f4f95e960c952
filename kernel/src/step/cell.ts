import { bindingNames, Reference, ScopeWalker } from "./scope";
import { ts } from "./typescript";

export type { Reference, Space } from "./scope";

/**
 * How a top-level name travels to a worker: `value` names are shipped as
 * data; every other kind is shipped as source. `type` covers type aliases
 * and interfaces (needed only to compile).
 */
export type DeclarationKind = "value" | "function" | "class" | "enum" | "type" | "import" | "namespace";

export interface Declaration {
  name: string;
  kind: DeclarationKind;
  /** The name exists at runtime (value space) … */
  value: boolean;
  /** … and/or as a type (type space). A class or enum is both. */
  type: boolean;
  /**
   * Standalone source that recreates the name (without `export`), for every
   * kind but `value`. An import keeps only this name's binding.
   */
  source?: string;
  /**
   * Identifies the source text within the cell: names that share one
   * statement (`const { a, b } = require("m")`) share it, so it is shipped once.
   */
  sourceKey: string;
  /** Offset and 0-based line of the declaration in the cell. */
  pos: number;
  line: number;
  /**
   * Names the declaration's source uses that it does not bind itself,
   * including other top-level names of the same cell (`local`).
   */
  refs: Reference[];
}

export interface SyntaxProblem {
  message: string;
  line: number;
  column: number;
}

/** What one cell defines and what it needs from outside itself. */
export interface CellDefinitions {
  /** Top-level declarations in source order (a name may repeat; the last wins). */
  declarations: Declaration[];
  /**
   * Names the cell uses that none of its own top-level declarations bind,
   * whether used before or after the declaration (a name read in a cell and
   * declared later in it is the cell's own, as TypeScript scoping says).
   * `read`/`write` say whether the cell reads and/or assigns the name.
   */
  reads: Reference[];
  /** Names the cell assigns without declaring (`x = 1`, `x++`): writes to earlier state. */
  assigns: string[];
  syntaxErrors: SyntaxProblem[];
  /** 0-based line of an offset in the cell. (The AST itself is not kept: the cache would hold every cell's tree.) */
  lineOf(pos: number): number;
}

const CACHE_LIMIT = 2000;
const cache = new Map<string, CellDefinitions>();

/**
 * Analyses a cell's TypeScript (no magic lines). Results are cached by code,
 * so re-analysing the notebook's history for every step costs a map lookup
 * per cell.
 */
export function analyzeCellDefinitions(code: string): CellDefinitions {
  const hit = cache.get(code);
  if (hit) {
    // Refresh recency so the history, which is looked up on every step, stays.
    cache.delete(code);
    cache.set(code, hit);
    return hit;
  }
  const result = analyze(code);
  cache.set(code, result);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  return result;
}

export function clearCellCache(): void {
  cache.clear();
}

function analyze(code: string): CellDefinitions {
  const sf = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const walker = new ScopeWalker(sf);
  walker.declareTopLevel();
  const declarations: Declaration[] = [];
  const line = (pos: number): number => sf.getLineAndCharacterOfPosition(pos).line;
  let overloads: string[] = [];

  const add = (
    name: string,
    kind: DeclarationKind,
    spaces: { value: boolean; type: boolean },
    source: string | undefined,
    node: ts.Node,
    sourceKey: string,
    refs: Reference[],
  ): void => {
    const pos = node.getStart(sf);
    declarations.push({ name, kind, ...spaces, source, sourceKey, pos, line: line(pos), refs });
  };

  for (const st of sf.statements) {
    if (!ts.isFunctionDeclaration(st)) overloads = [];
    if (ts.isVariableStatement(st)) {
      const keyword = st.declarationList.flags & ts.NodeFlags.Const ? "const" : st.declarationList.flags & ts.NodeFlags.Let ? "let" : "var";
      for (const d of st.declarationList.declarations) {
        const refs: Reference[] = [];
        walker.walkTopLevel(d, refs);
        const kind = declaratorKind(d);
        const source = kind === "value" ? undefined : `${keyword} ${d.getText(sf)};`;
        for (const id of bindingNames(d.name)) {
          // A destructured function is still data-shaped; only `const f = () => …` is source.
          const k = kind === "import" || ts.isIdentifier(d.name) ? kind : "value";
          add(id.text, k, { value: true, type: k === "class" || k === "import" }, k === "value" ? undefined : source, d, String(d.getStart(sf)), dedupe(refs));
        }
      }
      continue;
    }
    const refs: Reference[] = [];
    walker.walkTopLevel(st, refs);
    const merged = dedupe(refs);
    const key = String(st.getStart(sf));
    const text = (): string => withoutExport(st.getText(sf));
    if (ts.isFunctionDeclaration(st)) {
      if (!st.name) continue;
      if (!st.body) {
        // Overload signatures must travel with their implementation.
        overloads.push(text());
        continue;
      }
      add(st.name.text, "function", { value: true, type: false }, [...overloads, text()].join("\n"), st, key, merged);
      overloads = [];
    } else if (ts.isClassDeclaration(st)) {
      if (st.name) add(st.name.text, "class", { value: true, type: true }, text(), st, key, merged);
    } else if (ts.isEnumDeclaration(st)) {
      add(st.name.text, "enum", { value: true, type: true }, text(), st, key, merged);
    } else if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) {
      add(st.name.text, "type", { value: false, type: true }, text(), st, key, merged);
    } else if (ts.isModuleDeclaration(st)) {
      if (ts.isIdentifier(st.name)) add(st.name.text, "namespace", { value: true, type: true }, text(), st, key, merged);
    } else if (ts.isImportDeclaration(st)) {
      for (const [name, source, typeOnly, node] of importBindings(st, sf)) {
        add(name, "import", { value: !typeOnly, type: true }, source, node, `${key}:${name}`, []);
      }
    } else if (ts.isImportEqualsDeclaration(st)) {
      add(st.name.text, "import", { value: !st.isTypeOnly, type: true }, text(), st, key, merged);
    }
  }

  return {
    declarations,
    reads: dedupe(walker.cellRefs),
    assigns: [...new Set(walker.cellRefs.filter((r) => r.write).map((r) => r.name))],
    syntaxErrors: syntaxErrors(sf),
    lineOf: lineFinder(sf.getLineStarts()),
  };
}

/** One entry per (name, space): type-only only if every use is, eager if any use is. */
function dedupe(refs: Reference[]): Reference[] {
  const byKey = new Map<string, Reference>();
  for (const r of refs) {
    const key = `${r.space}:${r.name}`;
    const seen = byKey.get(key);
    if (!seen) {
      byKey.set(key, { ...r });
      continue;
    }
    seen.typeOnly &&= r.typeOnly;
    seen.eager ||= r.eager;
    seen.read ||= r.read;
    seen.write ||= r.write;
    seen.pos = Math.min(seen.pos, r.pos);
  }
  return [...byKey.values()];
}

function unwrap(e: ts.Expression): ts.Expression {
  for (;;) {
    if (
      ts.isParenthesizedExpression(e) ||
      ts.isAsExpression(e) ||
      ts.isSatisfiesExpression(e) ||
      ts.isNonNullExpression(e) ||
      ts.isTypeAssertionExpression(e)
    ) {
      e = e.expression;
    } else {
      return e;
    }
  }
}

function declaratorKind(d: ts.VariableDeclaration): DeclarationKind {
  if (!d.initializer) return "value";
  const init = unwrap(d.initializer);
  if (ts.isArrowFunction(init) || ts.isFunctionExpression(init)) return "function";
  if (ts.isClassExpression(init)) return "class";
  // `const fs = require("fs")` is an import in CommonJS clothing: a module
  // object can't be serialized, but the line can be re-run anywhere.
  if (
    ts.isCallExpression(init) &&
    ts.isIdentifier(init.expression) &&
    init.expression.text === "require" &&
    init.arguments.length === 1 &&
    ts.isStringLiteralLike(init.arguments[0])
  ) {
    return "import";
  }
  return "value";
}

/** Each imported name as its own one-name import statement. */
function importBindings(st: ts.ImportDeclaration, sf: ts.SourceFile): Array<[string, string, boolean, ts.Node]> {
  const clause = st.importClause;
  if (!clause) return [];
  const from = st.moduleSpecifier.getText(sf);
  const typeKw = clause.isTypeOnly ? "type " : "";
  const out: Array<[string, string, boolean, ts.Node]> = [];
  if (clause.name) out.push([clause.name.text, `import ${typeKw}${clause.name.text} from ${from};`, clause.isTypeOnly, clause.name]);
  const b = clause.namedBindings;
  if (b && ts.isNamespaceImport(b)) {
    out.push([b.name.text, `import ${typeKw}* as ${b.name.text} from ${from};`, clause.isTypeOnly, b]);
  } else if (b) {
    for (const el of b.elements) {
      out.push([el.name.text, `import ${typeKw}{ ${el.getText(sf)} } from ${from};`, clause.isTypeOnly || el.isTypeOnly, el]);
    }
  }
  return out;
}

function withoutExport(text: string): string {
  return text.replace(/^export\s+(default\s+)?/, "");
}

function syntaxErrors(sf: ts.SourceFile): SyntaxProblem[] {
  // Not in the public typings, but set by every parse since TypeScript 1.x.
  const diags = (sf as unknown as { parseDiagnostics?: readonly ts.DiagnosticWithLocation[] }).parseDiagnostics ?? [];
  return diags.map((d) => {
    const { line, character } = sf.getLineAndCharacterOfPosition(d.start);
    return { message: ts.flattenDiagnosticMessageText(d.messageText, "\n"), line, column: character };
  });
}

function lineFinder(starts: readonly number[]): (pos: number) => number {
  return (pos) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
}

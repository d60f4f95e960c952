/**
 * The session's declarations: one global declaration file that says what
 * every notebook name is. After a cell runs, its module declarations (what
 * TypeScript's declaration emit writes for it) become globals, its imports
 * become aliases written with `import("m")` types, and older declarations of
 * the names it declared are dropped — the later cell wins.
 *
 * The cell's own declarations come first: readers that take the first
 * declaration of a name (step binding, recording) see the newest.
 */
import { ts } from "../../step/typescript";
import { bindingNames } from "./cell-script";
import { bindingNames as bindingIdentifiers } from "../../step/scope";

/** Names a cell declares at top level that its module must export so declaration emit keeps them. */
export function exportSuffix(sf: ts.SourceFile): string {
  const exported = new Set<string>();
  const names = new Set<string>();
  for (const st of sf.statements) {
    const isExported = hasModifier(st, ts.SyntaxKind.ExportKeyword);
    const add = (n: string) => (isExported ? exported : names).add(n);
    if (ts.isVariableStatement(st)) {
      // `using` resources are disposed when the cell ends; AwaitUsing's bits include Const's, so compare exactly.
      const kind = st.declarationList.flags & ts.NodeFlags.BlockScoped;
      if (kind === ts.NodeFlags.Using || kind === ts.NodeFlags.AwaitUsing) continue;
      for (const d of st.declarationList.declarations) bindingNames(d.name).forEach(add);
    } else if (
      (ts.isFunctionDeclaration(st) ||
        ts.isClassDeclaration(st) ||
        ts.isInterfaceDeclaration(st) ||
        ts.isTypeAliasDeclaration(st) ||
        ts.isEnumDeclaration(st)) &&
      st.name &&
      !hasModifier(st, ts.SyntaxKind.DefaultKeyword)
    ) {
      add(st.name.text);
    } else if (ts.isModuleDeclaration(st) && ts.isIdentifier(st.name) && !(st.flags & ts.NodeFlags.GlobalAugmentation)) {
      add(st.name.text);
    } else if (ts.isImportDeclaration(st) && st.importClause && !st.importClause.isTypeOnly) {
      const c = st.importClause;
      if (c.name) names.add(c.name.text);
      if (c.namedBindings && ts.isNamespaceImport(c.namedBindings)) names.add(c.namedBindings.name.text);
      if (c.namedBindings && ts.isNamedImports(c.namedBindings)) for (const e of c.namedBindings.elements) if (!e.isTypeOnly) names.add(e.name.text);
    } else if (ts.isImportEqualsDeclaration(st) && !st.isTypeOnly) {
      names.add(st.name.text);
    } else if (ts.isExportDeclaration(st) && !st.moduleSpecifier && st.exportClause && ts.isNamedExports(st.exportClause)) {
      for (const e of st.exportClause.elements) exported.add((e.propertyName ?? e.name).text);
    }
  }
  for (const st of sf.statements) if (!ts.isVariableStatement(st)) nestedVars(st, names);
  const list = [...names].filter((n) => !exported.has(n));
  return `\nexport { ${list.join(", ")} };\n`;
}

/**
 * Declarations for `var`s in top-level blocks and loop heads, which
 * declaration emit (top-level statements only) leaves out.
 */
export function nestedVarDeclarations(checker: ts.TypeChecker, cell: ts.SourceFile): string {
  const out: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) || ts.isClassLike(node) || ts.isModuleDeclaration(node)) return;
    if (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.BlockScoped) === 0) {
      for (const d of node.declarations) {
        for (const id of bindingIdentifiers(d.name)) {
          const t = checker.getTypeAtLocation(id);
          const text = checker.typeToString(
            checker.getBaseTypeOfLiteralType(t),
            undefined,
            ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseFullyQualifiedType,
          );
          out.push(`declare var ${id.text}: ${text};`);
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  for (const st of cell.statements) if (!ts.isVariableStatement(st)) visit(st);
  return out.join("\n");
}

/** `var`s in top-level blocks and loop heads are top-level names too (functions keep their own). */
function nestedVars(node: ts.Node, into: Set<string>): void {
  if (ts.isFunctionLike(node) || ts.isClassLike(node) || ts.isModuleDeclaration(node)) return;
  if (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.BlockScoped) === 0) {
    for (const d of node.declarations) bindingNames(d.name).forEach((n) => into.add(n));
  }
  ts.forEachChild(node, (c) => nestedVars(c, into));
}

function hasModifier(node: ts.Node, kind: ts.SyntaxKind): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === kind);
}

/**
 * Global aliases for what a cell imports, so later cells see the imported
 * names with their types: `declare const x: typeof import("m").x;` for
 * values, `type T<A> = import("m").T<A>;` for types, and a namespace of type
 * aliases for `import * as ns` (so `ns.Type` works in a later cell).
 */
export function importAliases(checker: ts.TypeChecker, cell: ts.SourceFile): string {
  const out: string[] = [];
  for (const st of cell.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier) && st.importClause) {
      const spec = JSON.stringify(st.moduleSpecifier.text);
      const moduleSym = checker.getSymbolAtLocation(st.moduleSpecifier);
      const exportEquals = !!moduleSym?.exports?.has("export=" as ts.__String);
      const c = st.importClause;
      const typeOnly = c.isTypeOnly;
      if (c.name) out.push(...aliasFor(checker, c.name, exportEquals ? `import(${spec})` : `import(${spec}).default`, typeOnly));
      const nb = c.namedBindings;
      if (nb && ts.isNamespaceImport(nb)) out.push(...namespaceAlias(checker, nb.name.text, `import(${spec})`, moduleSym, typeOnly));
      if (nb && ts.isNamedImports(nb)) {
        for (const e of nb.elements) {
          const imported = (e.propertyName ?? e.name).text;
          out.push(...aliasFor(checker, e.name, `import(${spec})${propertyAccess(imported)}`, typeOnly || e.isTypeOnly));
        }
      }
    } else if (ts.isImportEqualsDeclaration(st) && ts.isExternalModuleReference(st.moduleReference) && ts.isStringLiteral(st.moduleReference.expression)) {
      const spec = JSON.stringify(st.moduleReference.expression.text);
      const moduleSym = checker.getSymbolAtLocation(st.moduleReference.expression);
      out.push(...namespaceAlias(checker, st.name.text, `import(${spec})`, moduleSym, st.isTypeOnly));
    }
  }
  return out.join("\n");
}

function propertyAccess(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

function aliasFor(checker: ts.TypeChecker, id: ts.Identifier, ref: string, typeOnly: boolean): string[] {
  const sym = checker.getSymbolAtLocation(id);
  if (!sym) return [`declare const ${id.text}: any;`];
  const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
  const out: string[] = [];
  if (target.flags & ts.SymbolFlags.Value && !typeOnly) out.push(`declare const ${id.text}: typeof ${ref};`);
  if (target.flags & ts.SymbolFlags.Type) out.push(typeAlias(id.text, ref, target));
  if (target.flags & (ts.SymbolFlags.NamespaceModule | ts.SymbolFlags.ValueModule)) out.push(...namespaceOfTypes(checker, id.text, ref, target));
  if (out.length === 0) out.push(`declare const ${id.text}: any;`);
  return out;
}

function namespaceAlias(checker: ts.TypeChecker, name: string, ref: string, moduleSym: ts.Symbol | undefined, typeOnly: boolean): string[] {
  const out = typeOnly ? [] : [`declare const ${name}: typeof ${ref};`];
  if (moduleSym) out.push(...namespaceOfTypes(checker, name, ref, moduleSym));
  return out;
}

/** `declare namespace ns { type A = import("m").A; … }`: the type side of a namespace import. */
function namespaceOfTypes(checker: ts.TypeChecker, name: string, ref: string, sym: ts.Symbol): string[] {
  let exports: ts.Symbol[];
  try {
    exports = checker.getExportsOfModule(sym);
  } catch {
    return [];
  }
  const members: string[] = [];
  for (const e of exports) {
    const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
    if (!(target.flags & ts.SymbolFlags.Type)) continue;
    const n = e.getName();
    if (!/^[A-Za-z_$][\w$]*$/.test(n) || n === "default") continue;
    members.push(`  ${typeAlias(n, `${ref}.${n}`, target)}`);
  }
  return members.length > 0 ? [`declare namespace ${name} {`, ...members, "}"] : [];
}

/** `type L<T0, T1 = any> = ref<T0, T1>;` with as many parameters as the target declares. */
function typeAlias(local: string, ref: string, target: ts.Symbol): string {
  let params: readonly ts.TypeParameterDeclaration[] = [];
  for (const d of target.declarations ?? []) {
    const tp = (d as { typeParameters?: ts.NodeArray<ts.TypeParameterDeclaration> }).typeParameters;
    if (tp && tp.length > 0) {
      params = tp;
      break;
    }
  }
  if (params.length === 0) return `type ${local} = ${ref};`;
  const ps = params.map((p, i) => `T${i}${p.default ? " = any" : ""}`);
  const args = params.map((_, i) => `T${i}`);
  return `type ${local}<${ps.join(", ")}> = ${ref}<${args.join(", ")}>;`;
}

/** The names a declaration statement puts in each space. */
interface Declared {
  values: Set<string>;
  types: Set<string>;
  namespaces: Set<string>;
  /** Values declared by something other than a namespace (a namespace merges with a later one). */
  plainValues: Set<string>;
}

function declaredBy(st: ts.Statement, into: Declared): void {
  if (ts.isVariableStatement(st)) {
    for (const d of st.declarationList.declarations) bindingNames(d.name).forEach((n) => (into.values.add(n), into.plainValues.add(n)));
  } else if (ts.isFunctionDeclaration(st) && st.name) {
    into.values.add(st.name.text);
    into.plainValues.add(st.name.text);
  } else if ((ts.isClassDeclaration(st) || ts.isEnumDeclaration(st)) && st.name) {
    into.values.add(st.name.text);
    into.plainValues.add(st.name.text);
    into.types.add(st.name.text);
  } else if ((ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) && st.name) {
    into.types.add(st.name.text);
  } else if (ts.isModuleDeclaration(st) && ts.isIdentifier(st.name)) {
    into.namespaces.add(st.name.text);
    if (st.body && !(ts.isModuleBlock(st.body) && st.body.statements.every((x) => ts.isInterfaceDeclaration(x) || ts.isTypeAliasDeclaration(x)))) {
      into.values.add(st.name.text);
    }
  }
}

/**
 * A cell's emitted module declarations as globals: `export` dropped,
 * `export {…}` and imports dropped (imports become aliases instead).
 */
export function globalize(dts: string): string {
  const sf = ts.createSourceFile("cell.d.ts", dts, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) || ts.isImportEqualsDeclaration(st) || ts.isExportDeclaration(st) || ts.isExportAssignment(st)) continue;
    let text = st.getText(sf);
    const mods = ts.canHaveModifiers(st) ? (ts.getModifiers(st) ?? []) : [];
    const exp = mods.find((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (exp) {
      const start = st.getStart(sf);
      text = text.slice(0, exp.getStart(sf) - start) + text.slice(exp.getEnd() - start).replace(/^\s+/, "");
    }
    if (hasModifier(st, ts.SyntaxKind.DefaultKeyword)) continue;
    const needsDeclare =
      (ts.isVariableStatement(st) || ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st) || ts.isEnumDeclaration(st) || ts.isModuleDeclaration(st)) &&
      !hasModifier(st, ts.SyntaxKind.DeclareKeyword);
    out.push(needsDeclare ? `declare ${text}` : text);
  }
  return out.join("\n");
}

/** `prev` without what `next` redeclares: a name's newest declaration replaces the older ones. */
export function mergeDeclarations(next: string, prev: string): string {
  const nextSf = ts.createSourceFile("next.d.ts", next, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const nd: Declared = { values: new Set(), types: new Set(), namespaces: new Set(), plainValues: new Set() };
  for (const st of nextSf.statements) declaredBy(st, nd);
  const prevSf = ts.createSourceFile("prev.d.ts", prev, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const kept: string[] = [];
  for (const st of prevSf.statements) {
    if (ts.isVariableStatement(st)) {
      const decls = st.declarationList.declarations.filter((d) => !bindingNames(d.name).some((n) => nd.values.has(n)));
      if (decls.length === st.declarationList.declarations.length) kept.push(st.getText(prevSf));
      else if (decls.length > 0) {
        const kw = st.declarationList.flags & ts.NodeFlags.Const ? "const" : st.declarationList.flags & ts.NodeFlags.Let ? "let" : "var";
        kept.push(`declare ${kw} ${decls.map((d) => d.getText(prevSf)).join(", ")};`);
      }
      continue;
    }
    const d: Declared = { values: new Set(), types: new Set(), namespaces: new Set(), plainValues: new Set() };
    declaredBy(st, d);
    // A namespace merges with a later namespace of the same name (as in one program); anything else is replaced.
    const clash = ts.isModuleDeclaration(st)
      ? [...d.namespaces].some((n) => nd.plainValues.has(n) || nd.types.has(n))
      : [...d.values].some((n) => nd.values.has(n)) || [...d.types].some((n) => nd.types.has(n));
    if (!clash) kept.push(st.getText(prevSf));
  }
  return [next, ...kept].filter((s) => s.length > 0).join("\n") + "\n";
}

/**
 * The notebook's own modules a step imports (`import { clean } from
 * "./lib/clean"`, and what that file imports in turn), compiled here and
 * shipped inside the step program, so every target — a local worker, a
 * Slurm node, a Batch container without the notebook's folder — runs the
 * same code the kernel type-checked, and no worker loads the compiler.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ts } from "./typescript";
import { resolveLocal } from "../worker/shipped-modules";

/** Keys are paths relative to the notebook folder (`lib/clean.ts`); values are CommonJS. */
export type ShippedModules = Record<string, string>;

function relativeSpecifiers(sf: ts.SourceFile): string[] {
  const out: string[] = [];
  const visit = (n: ts.Node) => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      if (!(ts.isImportDeclaration(n) && n.importClause?.isTypeOnly)) out.push(n.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) {
      out.push(n.moduleReference.expression.text);
    } else if (ts.isCallExpression(n) && n.arguments.length === 1 && ts.isStringLiteral(n.arguments[0])) {
      const callee = n.expression;
      if ((ts.isIdentifier(callee) && callee.text === "require") || callee.kind === ts.SyntaxKind.ImportKeyword) out.push(n.arguments[0].text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out.filter((s) => s.startsWith("./") || s.startsWith("../"));
}

function compile(file: string, text: string): string {
  if (file.endsWith(".json")) return `module.exports = ${text};`;
  return ts.transpileModule(text, {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, jsx: ts.JsxEmit.React },
  }).outputText;
}

/**
 * Every local module reachable from `code` (the step's shipped imports and
 * body). `virtual` answers for modules that exist only in the kernel
 * (`@module` cells). Files outside the notebook folder or under
 * node_modules are left to the target's own resolution.
 */
export function shipLocalModules(cwd: string, code: string[], virtual: (file: string) => string | undefined = () => undefined): ShippedModules {
  const shipped: ShippedModules = {};
  const exists = (f: string) => virtual(f) !== undefined || (fs.existsSync(f) && fs.statSync(f).isFile());
  const queue: Array<{ dir: string; spec: string }> = [];
  for (const c of code) {
    const sf = ts.createSourceFile("step.ts", c, ts.ScriptTarget.Latest, false, ts.ScriptKind.TSX);
    for (const spec of relativeSpecifiers(sf)) queue.push({ dir: cwd, spec });
  }
  const root = cwd + path.sep;
  while (queue.length > 0) {
    const { dir, spec } = queue.pop() as { dir: string; spec: string };
    const file = resolveLocal(dir, spec, exists);
    if (!file || !file.startsWith(root) || file.includes(`${path.sep}node_modules${path.sep}`)) continue;
    const key = path.relative(cwd, file);
    if (key in shipped) continue;
    const text = virtual(file) ?? fs.readFileSync(file, "utf8");
    shipped[key] = compile(file, text);
    if (file.endsWith(".json")) continue;
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, file.endsWith("x") ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
    for (const s of relativeSpecifiers(sf)) queue.push({ dir: path.dirname(file), spec: s });
  }
  return shipped;
}

/**
 * Notebook (.ipynb) → a readable, editable TypeScript flow file.
 *
 * Grouping (kept simple on purpose):
 * - every code cell that computes something becomes one step, named by its
 *   `%%step` line, else after the first value it declares (`data`), else
 *   `cell_N` (N = the cell's 1-based position in the notebook);
 * - a cell that only declares functions, classes, types, enums or imports
 *   is *shared code*: it goes to the top level of the flow file, where every
 *   step can call it (a function can't travel between processes as data);
 * - imports from every cell are gathered at the top of the file (TypeScript
 *   allows them nowhere else);
 * - markdown cells become comments above the next step; line-magic cells
 *   (`%history`, …) are left out.
 *
 * A step's body is its cell's code, verbatim and not re-indented, so strings
 * and the source of functions it declares stay byte-identical to the
 * notebook's (and so do the artifacts' SHA-256s). Its inputs are the values
 * it reads that earlier cells compute, as found by the same analysis that
 * packages a `%%step` (kernel/src/step); each comes from the latest earlier
 * step that declares or assigns it. It returns every name it declares (and
 * every input it assigns). Dependencies between steps follow from the
 * inputs, so the flow is a DAG and independent cells run in parallel.
 *
 * Not modelled (reported where detectable): changes made through methods
 * (`arr.push(x)` in a later cell), functions declared in a cell that also
 * computes values and used by other cells (export refuses and says how to
 * split the cell), types declared in such cells and used elsewhere (the
 * flow runs, but an editor will flag the type).
 */
import { basename } from "node:path";
import { ts } from "../step/typescript";
import { analyzeStep, type HistoryCell } from "../step/analysis";
import { buildCellGraph } from "../step/graph";
import { classifyCell, formatDuration, formatSize, MagicError, type StepOptions } from "../magics";

export interface ExportProblem {
  /** 1-based position of the cell in the notebook. */
  cell: number;
  message: string;
}

export class ExportError extends Error {
  constructor(readonly problems: ExportProblem[]) {
    super(problems.map((p) => (p.cell > 0 ? `cell ${p.cell}: ${p.message}` : p.message)).join("\n"));
    this.name = "ExportError";
  }
}

export interface ExportedStep {
  name: string;
  cell: number;
  /** Parameter → the step and name it reads. */
  inputs: Array<{ name: string; step: string }>;
  outputs: string[];
  needs: string[];
}

export interface ExportResult {
  source: string;
  flowName: string;
  steps: ExportedStep[];
  /** Cells that became shared top-level code. */
  shared: number[];
  warnings: ExportProblem[];
}

interface NotebookCell {
  cell_type?: string;
  source?: string | string[];
}

interface Entry {
  cell: number;
  body: string;
  options: StepOptions | null;
  explicitOn: boolean;
  /** The `%%step` line, as written. */
  line: string | null;
  comments: string[];
  kind: "shared" | "step";
  imports: string[];
  /** Body without its import statements (steps). */
  code: string;
}

const TS_LANGUAGES = ["typescript", "ts", "javascript", "js"];
const JS_RESERVED = new Set(
  "break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements interface package private protected public await async of".split(
    " ",
  ),
);

export function exportNotebook(notebook: unknown, options: { notebookPath: string; flowName?: string }): ExportResult {
  const nb = notebook as { cells?: NotebookCell[]; metadata?: { kernelspec?: { language?: string; name?: string }; language_info?: { name?: string } } };
  if (!nb || typeof nb !== "object" || !Array.isArray(nb.cells)) {
    throw new ExportError([{ cell: 0, message: `${options.notebookPath} is not a Jupyter notebook (no "cells" list)` }]);
  }
  const language = nb.metadata?.kernelspec?.language ?? nb.metadata?.language_info?.name;
  if (language && !TS_LANGUAGES.includes(language.toLowerCase())) {
    throw new ExportError([
      {
        cell: 0,
        message: `${options.notebookPath} is a ${language} notebook (kernel ${nb.metadata?.kernelspec?.name ?? "?"}); nbscale exports TypeScript notebooks run with the nbscale kernel`,
      },
    ]);
  }
  const problems: ExportProblem[] = [];
  const warnings: ExportProblem[] = [];
  const entries: Entry[] = [];
  let pendingComments: string[] = [];
  nb.cells.forEach((c, i) => {
    const n = i + 1;
    const source = Array.isArray(c.source) ? c.source.join("") : (c.source ?? "");
    if (c.cell_type === "markdown") {
      pendingComments.push(
        ...source
          .trim()
          .split("\n")
          .slice(0, 12)
          .map((l) => `// ${l}`.trimEnd()),
      );
      return;
    }
    if (c.cell_type !== "code") return;
    let body = source;
    let opts: StepOptions | null = null;
    let explicitOn = false;
    let line: string | null = null;
    try {
      const classified = classifyCell(source);
      if (classified.kind === "line-magics") {
        warnings.push({
          cell: n,
          message: `left out: line magics (${classified.magics.map((m) => `%${m.magic.magic}`).join(", ")}) act on the notebook session`,
        });
        return;
      }
      if (classified.kind === "step") {
        body = classified.step.body;
        opts = classified.step.options;
        explicitOn = /\s--on(\s|=)/.test(classified.step.line);
        line = classified.step.line.trim();
      }
    } catch (e) {
      if (e instanceof MagicError) {
        problems.push({ cell: n, message: e.message });
        return;
      }
      throw e;
    }
    if (body.trim() === "" || stripComments(body).trim() === "") {
      if (opts) warnings.push({ cell: n, message: "left out: a %%step cell with no code" });
      return;
    }
    entries.push({ cell: n, body, options: opts, explicitOn, line, comments: pendingComments, kind: "step", imports: [], code: body });
    pendingComments = [];
  });
  if (problems.length > 0) throw new ExportError(problems);
  if (entries.length === 0) throw new ExportError([{ cell: 0, message: `${options.notebookPath} has no code cells to export` }]);

  for (const e of entries) splitCell(e, problems);
  const history: HistoryCell[] = entries.map((e) => ({ id: `cell ${e.cell}`, code: e.body }));
  const graph = buildCellGraph(history, (i) => (entries[i].options?.foreach ? { implicit: ["item", "index"] } : {}));

  // Module-level names: shared definitions and imports.
  const moduleNames = new Set<string>();
  const importLines: string[] = [];
  const importedAs = new Map<string, string>();
  entries.forEach((e) => {
    for (const line of e.imports) {
      for (const name of importedNames(line)) {
        const prev = importedAs.get(name);
        if (prev !== undefined && prev !== line) {
          problems.push({
            cell: e.cell,
            message: `imports \`${name}\` differently from an earlier cell (\`${prev}\` vs \`${line}\`); a flow file has one top level, rename one`,
          });
        }
        importedAs.set(name, line);
        moduleNames.add(name);
      }
      if (!importLines.includes(line)) importLines.push(line);
    }
  });
  entries.forEach((e, i) => {
    if (e.kind !== "shared") return;
    const a = graph.cells[i].analysis;
    for (const o of a.outputs) moduleNames.add(o.name);
    for (const input of a.inputs.filter((x) => !x.typeOnly)) {
      problems.push({
        cell: e.cell,
        message:
          `declares functions that read \`${input.name}\`, which cell ${entries[input.cellIndex].cell} computes; at the top level of a flow ` +
          `they can't see step data. Pass \`${input.name}\` as a parameter, or move the function into the cell that uses it`,
      });
    }
  });

  // Steps: names, outputs, inputs.
  const usedNames = new Set<string>();
  const steps: Array<{
    entry: Entry;
    index: number;
    name: string;
    handle: string;
    outputs: string[];
    inputs: Array<{ name: string; step: string; handle: string }>;
    implicit: string[];
    foreachInputs: string[];
    bodyInputs: string[];
  }> = [];
  const producerOf = new Map<string, { step: string; handle: string }>();
  const producers: Array<Map<string, { step: string; handle: string }>> = [];
  const handles = new Set<string>();
  entries.forEach((e, i) => {
    producers[i] = new Map(producerOf);
    if (e.kind !== "step") return;
    const a = graph.cells[i].analysis;
    const outputs = [
      ...new Set([...a.outputs.filter((o) => o.value && ["value", "function", "class", "enum"].includes(o.kind)).map((o) => o.name), ...a.assigns]),
    ];
    let name = e.options?.name;
    if (name !== undefined && usedNames.has(name)) {
      problems.push({ cell: e.cell, message: `step name ${name} is used by an earlier cell too; step names must be unique` });
    }
    if (name === undefined) {
      const first = a.outputs.find((o) => o.kind === "value")?.name;
      name = first && /^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(first) && !usedNames.has(first) ? first : `cell_${e.cell}`;
      while (usedNames.has(name)) name += "_";
    }
    usedNames.add(name);
    let handle = name.replace(/-/g, "_").replace(/^(\d)/, "_$1");
    while (JS_RESERVED.has(handle) || moduleNames.has(handle) || handles.has(handle) || handle === "flow" || handle === "step") handle += "_step";
    handles.add(handle);

    const inputs: Array<{ name: string; step: string; handle: string }> = [];
    const addInput = (inputName: string, from: number): void => {
      if (inputs.some((x) => x.name === inputName)) return;
      const p = producers[i].get(inputName);
      if (!p) {
        warnings.push({ cell: e.cell, message: `reads \`${inputName}\`, which cell ${entries[from]?.cell ?? "?"} declares but no exported step returns` });
        return;
      }
      inputs.push({ name: inputName, ...p });
    };
    for (const input of a.inputs) if (!input.typeOnly) addInput(input.name, input.cellIndex);
    const bodyInputs = inputs.map((x) => x.name);
    const foreachInputs: string[] = [];
    if (e.options?.foreach) {
      const fa = analyzeStep(`(${e.options.foreach});`, history.slice(0, i));
      for (const input of fa.inputs) {
        if (input.typeOnly) continue;
        addInput(input.name, input.cellIndex);
        foreachInputs.push(input.name);
      }
      for (const u of fa.unresolved) {
        if (u.space === "value") warnings.push({ cell: e.cell, message: `--foreach reads \`${u.name}\`, which no earlier cell defines` });
      }
    }
    for (const item of a.closure) {
      if (item.typeOnly || item.kind === "import") continue;
      const from = entries[item.cellIndex];
      if (from.kind === "shared") continue;
      problems.push({
        cell: e.cell,
        message:
          `uses \`${item.names.join("`, `")}\`, which cell ${from.cell} declares next to code that computes values; steps share ` +
          `functions only through the flow's top level. Move it into a cell of its own (functions, classes, types and imports only) and export again`,
      });
    }
    for (const u of a.unresolved) {
      if (u.space === "value" && u.usedBy.step) warnings.push({ cell: e.cell, message: `${u.message} (line ${u.usedBy.line + 1})` });
    }
    for (const c of a.conflicts) warnings.push({ cell: e.cell, message: c.message });
    if (a.syntaxErrors.length > 0) {
      const s = a.syntaxErrors[0];
      problems.push({ cell: e.cell, message: `syntax error at line ${s.line + 1}: ${s.message}` });
    }
    steps.push({ entry: e, index: i, name, handle, outputs, inputs, implicit: a.implicit, foreachInputs, bodyInputs });
    for (const o of outputs) producerOf.set(o, { step: name, handle });
  });
  if (problems.length > 0) throw new ExportError(problems);

  const flowName =
    options.flowName ??
    (basename(options.notebookPath)
      .replace(/\.ipynb$/i, "")
      .replace(/[^A-Za-z0-9_-]+/g, "_")
      .replace(/^[-]+/, "") ||
      "flow");
  const nbscaleImports = ["flow", "step"].filter((n) => !moduleNames.has(n));
  if (nbscaleImports.length < 2) {
    throw new ExportError([{ cell: 0, message: "the notebook declares `flow` or `step` at top level, which the flow file needs for itself; rename it" }]);
  }

  const out: string[] = [];
  out.push(
    "/**",
    ` * ${flowName}: a flow exported by nbscale from ${basename(options.notebookPath)}.`,
    " *",
    ` *   nbscale run ${flowName}.flow.ts        run it (no notebook, no kernel); --json for a summary`,
    " *   nbscale resume RUN_ID [--from STEP]    continue after a failure without redoing finished steps",
    " *",
    " * One step per code cell. A step's body is its cell's code, verbatim; it gets",
    " * the values it reads from earlier steps as inputs and returns the names it",
    " * declares. Cells that only declare functions, classes or types are shared",
    " * code at the top level; imports are gathered here. Edit freely: a step whose",
    " * code or inputs change runs again on resume, the others are reused.",
    " */",
    `import { flow, step } from "nbscale";`,
  );
  for (const line of importLines) out.push(line);
  out.push("");
  let carried: string[] = [];
  entries.forEach((e) => {
    if (e.kind === "shared" && e.code.trim() === "") {
      // Imports only: its markdown goes with the next cell.
      carried.push(...e.comments);
      return;
    }
    e.comments = [...carried, ...e.comments];
    carried = [];
    if (e.kind === "shared") out.push(...e.comments, `// ── cell ${e.cell}: shared definitions`, e.code.replace(/\s+$/, ""), "");
  });
  for (const s of steps) {
    const e = s.entry;
    const header = e.line ? `cell ${e.cell}: ${e.line}` : `cell ${e.cell}`;
    out.push(...e.comments, `// ── ${header}`);
    const opts = optionEntries(e);
    if (e.options?.foreach) {
      const params = s.foreachInputs.length ? `{ ${s.foreachInputs.join(", ")} }` : "";
      opts.push(`foreach: (${params}) => (${e.options.foreach})`);
    }
    if (s.inputs.length > 0) opts.push(`inputs: { ${s.inputs.map((x) => `${x.name}: ${x.handle}.${x.name}`).join(", ")} }`);
    const params = [...s.bodyInputs, ...s.implicit];
    const args = params.length ? `{ ${params.join(", ")} }` : "";
    const isAsync = /\bawait\b/.test(e.code) ? "async " : "";
    out.push(`const ${s.handle} = step(${JSON.stringify(s.name)}, { ${opts.join(", ")} }, ${isAsync}(${args}) => {`.replace("{  }", "{}"));
    out.push(e.code.replace(/\s+$/, ""));
    out.push(`return { ${s.outputs.join(", ")} };`.replace("{  }", "{}"), "});", "");
  }
  out.push(`export default flow(${JSON.stringify(flowName)}, [${steps.map((s) => s.handle).join(", ")}]);`, "");

  return {
    source: out.join("\n"),
    flowName,
    steps: steps.map((s) => ({
      name: s.name,
      cell: s.entry.cell,
      inputs: s.inputs.map((x) => ({ name: x.name, step: x.step })),
      outputs: s.outputs,
      needs: [...new Set(s.inputs.map((x) => x.step))],
    })),
    shared: entries.filter((e) => e.kind === "shared").map((e) => e.cell),
    warnings,
  };
}

function optionEntries(e: Entry): string[] {
  const o = e.options;
  if (!o) return [];
  const out: string[] = [];
  if (e.explicitOn) out.push(`on: ${JSON.stringify(o.on)}`);
  if (o.memory !== undefined) out.push(`memory: ${JSON.stringify(formatSize(o.memory))}`);
  if (o.cpu !== undefined) out.push(`cpu: ${o.cpu}`);
  if (o.gpu !== undefined) out.push(`gpu: ${o.gpu}`);
  if (o.retries !== undefined) out.push(`retries: ${o.retries}`);
  if (o.timeout !== undefined) out.push(`timeout: ${JSON.stringify(formatDuration(o.timeout))}`);
  if (Object.keys(o.env).length > 0) {
    out.push(
      `env: { ${Object.entries(o.env)
        .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
        .join(", ")} }`,
    );
  }
  if (o.parallel !== undefined) out.push(`parallel: ${o.parallel}`);
  if (o.queue !== undefined) out.push(`queue: ${JSON.stringify(o.queue)}`);
  if (o.image !== undefined) out.push(`image: ${JSON.stringify(o.image)}`);
  if (o.partition !== undefined) out.push(`partition: ${JSON.stringify(o.partition)}`);
  return out;
}

/** Sorts a cell's statements into imports (hoisted), and decides whether the rest is shared code or a step. */
function splitCell(e: Entry, problems: ExportProblem[]): void {
  const sf = ts.createSourceFile("cell.ts", e.body, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const remove: Array<[number, number]> = [];
  let onlyDefinitions = true;
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) || ts.isImportEqualsDeclaration(st) || isRequireStatement(st)) {
      if (ts.isImportDeclaration(st) && !st.importClause) {
        problems.push({
          cell: e.cell,
          message: `a side-effect import (\`${st.getText(sf)}\`) can't move to the flow's top level unchanged; import a name from it`,
        });
      }
      e.imports.push(st.getText(sf).replace(/^export\s+/, ""));
      remove.push([st.getStart(sf), st.getEnd()]);
      continue;
    }
    if (!isDefinition(st)) onlyDefinitions = false;
  }
  e.code = cut(e.body, remove);
  e.kind = !e.options && onlyDefinitions ? "shared" : "step";
  // A step with nothing left but comments (an imports-only %%step cell) has nothing to run.
  if (e.kind === "step" && stripComments(e.code).trim() === "") e.kind = "shared";
}

function isRequireStatement(st: ts.Statement): boolean {
  if (!ts.isVariableStatement(st)) return false;
  return st.declarationList.declarations.every((d) => {
    const init = d.initializer;
    return (
      init !== undefined &&
      ts.isCallExpression(init) &&
      ts.isIdentifier(init.expression) &&
      init.expression.text === "require" &&
      init.arguments.length === 1 &&
      ts.isStringLiteralLike(init.arguments[0])
    );
  });
}

function isDefinition(st: ts.Statement): boolean {
  if (
    ts.isFunctionDeclaration(st) ||
    ts.isClassDeclaration(st) ||
    ts.isInterfaceDeclaration(st) ||
    ts.isTypeAliasDeclaration(st) ||
    ts.isEnumDeclaration(st) ||
    ts.isModuleDeclaration(st) ||
    ts.isEmptyStatement(st)
  ) {
    return true;
  }
  if (ts.isVariableStatement(st) && st.declarationList.flags & ts.NodeFlags.Const) {
    return st.declarationList.declarations.every((d) => {
      let init = d.initializer;
      while (init && (ts.isParenthesizedExpression(init) || ts.isAsExpression(init) || ts.isSatisfiesExpression(init))) init = init.expression;
      return ts.isIdentifier(d.name) && init !== undefined && (ts.isArrowFunction(init) || ts.isFunctionExpression(init) || ts.isClassExpression(init));
    });
  }
  return false;
}

/** Removes ranges, and the lines they leave blank. */
function cut(text: string, ranges: Array<[number, number]>): string {
  let out = text;
  for (const [start, end] of [...ranges].sort((a, b) => b[0] - a[0])) {
    let s = start;
    let e = end;
    const lineStart = out.lastIndexOf("\n", s - 1) + 1;
    const nl = out.indexOf("\n", e);
    const lineEnd = nl < 0 ? out.length : nl;
    if (out.slice(lineStart, s).trim() === "" && out.slice(e, lineEnd).trim() === "") {
      s = lineStart;
      e = nl < 0 ? out.length : nl + 1;
    }
    out = out.slice(0, s) + out.slice(e);
  }
  return out;
}

function importedNames(line: string): string[] {
  const sf = ts.createSourceFile("i.ts", line, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const names: string[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st)) {
      const c = st.importClause;
      if (c?.name) names.push(c.name.text);
      const b = c?.namedBindings;
      if (b && ts.isNamespaceImport(b)) names.push(b.name.text);
      else if (b) for (const el of b.elements) names.push(el.name.text);
    } else if (ts.isImportEqualsDeclaration(st)) {
      names.push(st.name.text);
    } else if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) {
        if (ts.isIdentifier(d.name)) names.push(d.name.text);
        else for (const el of (d.name as ts.ObjectBindingPattern).elements) if (ts.isIdentifier(el.name)) names.push(el.name.text);
      }
    }
  }
  return names;
}

function stripComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
}

/**
 * Runs TypeScript cells in this process. Each cell is type-checked by the
 * stock TypeScript language service against the session's declarations
 * (engine/compiler.ts), emitted, turned into a classic script whose
 * top-level names are real bindings of the realm's script scope
 * (engine/cell-script.ts, engine/bindings.ts), and run with `vm` so Ctrl-C
 * (SIGINT) stops a busy loop. Cells therefore behave like one program:
 * shorthand properties, closures over earlier `let`s and loops over
 * top-level variables all see plain bindings.
 */
import * as vm from "node:vm";
import * as path from "node:path";
import { inspect } from "node:util";
import { LineMap } from "./line-map";
import { excerpt, heading, interruptedError, type CellError } from "./errors";
import { CellCompiler, type Diagnostic } from "./engine/compiler";
import { ScriptBindings } from "./engine/bindings";
import { RUNTIME, toCellScript, type CellScript } from "./engine/cell-script";
import { exportSuffix, globalize, importAliases, mergeDeclarations, nestedVarDeclarations } from "./engine/session-decls";
import { generatedToSourceLines } from "./engine/source-map";
import { importValue, ModuleLoader } from "./engine/loader";
import { cellDirectives } from "./engine/directives";
import { isCompleteCell } from "./engine/complete-code";
import { quickInfoText } from "./engine/quick-info";
import { ts } from "../step/typescript";
import { shipLocalModules, type ShippedModules } from "../step/local-modules";

import type { ExecutionMeta } from "./execution-meta";

export type { Diagnostic } from "./engine/compiler";

/** How a cell ended, plus what the history records about it (steps fill `meta`). */
export type ExecOutcome = ({ ok: true; hasValue: boolean; value?: unknown } | { ok: false; error: CellError }) & { meta?: ExecutionMeta };

/** A value to place in the session under a name, with its TypeScript type. */
export interface Binding {
  name: string;
  value: unknown;
  /** Type text as the checker prints it; unknown or unresolvable types fall back to `any`. */
  type?: string;
  kind?: "const" | "let";
}

export interface CompletionResult {
  start: number;
  end: number;
  matches: string[];
  types: { text: string; type: string; start: number; end: number }[];
}

export interface ExecutorOptions {
  cwd: string;
  /** Modules cells may import that don't live in the notebook folder. */
  builtinModules: Record<string, () => unknown>;
  /** Directory of the `nbscale` package, so its types resolve from any folder. */
  packageDir: string;
  /** Declarations every cell sees (e.g. `prompt`), with their values in `preludeValues`. */
  prelude?: string;
  /** Values for names declared in `prelude`: they become notebook bindings. */
  preludeValues?: Record<string, unknown>;
}

interface Compiled {
  diagnostics: Diagnostic[];
  declOutput?: string;
  script?: CellScript;
  /** 0-based cell line per 0-based script line. */
  cellLines?: number[];
  /** An `@module` cell: registered, nothing to run. */
  module?: string;
}

interface Runtime {
  imports: Array<Record<string, unknown>>;
  last: unknown;
  copyOut?: (...values: unknown[]) => void;
}

let cellCounter = 0;

export class Executor {
  private compiler: CellCompiler | null = null;
  private prevDecl = "";
  private readonly bindings = new ScriptBindings();
  private readonly loader: ModuleLoader;
  private readonly runtime: Runtime = { imports: [], last: undefined };
  private rejectInterrupt: ((e: Error) => void) | null = null;
  /** An interrupt that came while the cell was still being compiled or its imports loaded. */
  private interruptPending = false;
  private executing = false;
  /** Script line → cell line of every cell that ran, so a later error names earlier cells' lines too. */
  private readonly cellMaps = new Map<string, { lines: number[]; offset: number }>();
  private readonly compiled = new Map<string, { declarations: string; result: Compiled }>();
  /** Names whose binding is a module (or part of one) an import put there. */
  private readonly importNames = new Set<string>();
  /** Names that functions of cells that ran use: such names stay live bindings in every later cell. */
  private readonly captured = new Set<string>();

  constructor(private readonly options: ExecutorOptions) {
    this.loader = new ModuleLoader(options.cwd, options.builtinModules, options.packageDir);
    this.prevDecl = options.prelude ?? "";
    this.bindings.declare([RUNTIME, "require"]);
    this.bindings.set(RUNTIME, this.runtime);
    this.bindings.set("require", this.loader.require);
    this.setPrelude();
  }

  private setPrelude(): void {
    for (const [name, value] of Object.entries(this.options.preludeValues ?? {})) this.bindings.set(name, value);
  }

  private get cc(): CellCompiler {
    if (!this.compiler) {
      this.compiler = new CellCompiler({
        cwd: this.options.cwd,
        packageDir: this.options.packageDir,
        tslabTypesDir: path.join(this.options.packageDir, "assets", "tslab-types"),
      });
    }
    return this.compiler;
  }

  /** Loads the compiler and checks a first cell, so the user's first cell doesn't pay for it. */
  warmUp(): void {
    this.compile("const __nbscale_warm__ = 1;", this.prevDecl);
  }

  /**
   * A compile is a function of the cell, the session's declarations and the
   * names earlier cells' functions use; re-running a cell (or `1 + 1` again)
   * with all three unchanged reuses it. Cells that import the notebook's own
   * files are compiled every time: those files may have changed.
   */
  private compile(src: string, declarations: string): Compiled {
    if (/["']\.\.?\//.test(src) || /@(module|jsx)\b/.test(src)) return this.compileNow(src, declarations);
    const key = `${this.captured.size}\0${declarations.length}\0${src}`;
    const hit = this.compiled.get(key);
    if (hit && hit.declarations === declarations) {
      this.compiled.delete(key);
      this.compiled.set(key, hit);
      return hit.result;
    }
    const result = this.compileNow(src, declarations);
    this.compiled.set(key, { declarations, result });
    if (this.compiled.size > 64) this.compiled.delete(this.compiled.keys().next().value as string);
    return result;
  }

  private compileNow(src: string, declarations: string): Compiled {
    const dir = cellDirectives(src);
    if (dir.module) {
      const file = this.cc.setModule(dir.module, src, dir.jsx);
      this.loader.setVirtual(file, src);
      const { program, cell } = this.cc.load({ session: declarations, cell: `import * as __m from "./${dir.module}";\nexport { __m };\n`, jsx: false });
      const moduleFile = program.getSourceFile(file);
      const diagnostics = moduleFile ? this.cc.diagnostics(program, cell) : [];
      return { diagnostics, module: dir.module };
    }
    const sf = ts.createSourceFile("cell.ts", src, ts.ScriptTarget.Latest, false, dir.jsx ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
    const { program, cell } = this.cc.load({ session: declarations, cell: src + exportSuffix(sf), jsx: dir.jsx });
    const diagnostics = this.cc.diagnostics(program, cell);
    if (diagnostics.length > 0) return { diagnostics };
    const out = this.cc.emit(program, cell);
    const checker = program.getTypeChecker();
    const cellDecls = [globalize(out.dts), nestedVarDeclarations(checker, cell), importAliases(checker, cell)].filter((s) => s.length > 0).join("\n");
    const declOutput = mergeDeclarations(cellDecls, declarations);
    const script = toCellScript(out.js, { captured: this.captured });
    let jsToTs: number[] = [];
    try {
      jsToTs = generatedToSourceLines((JSON.parse(out.map) as { mappings: string }).mappings);
    } catch {
      // no map: lines fall back to the token alignment below
    }
    const cellLines =
      jsToTs.length > 0
        ? script.jsLines.map((l) => jsToTs[Math.min(l, jsToTs.length - 1)] ?? 0)
        : script.jsLines.map((l) => new LineMap(out.js, src).tsLine(l));
    return { diagnostics, declOutput, script, cellLines };
  }

  /**
   * Type-checks without running: diagnostics and the declarations the cell would add.
   * `declarations` replaces the session's for this check only (a step body sees a `Lazy<T>` name as `T`).
   */
  check(src: string, declarations?: string): { diagnostics: Diagnostic[]; declOutput?: string } {
    const r = this.compile(src, declarations ?? this.prevDecl);
    return { diagnostics: r.diagnostics, declOutput: r.declOutput };
  }

  get declarations(): string {
    return this.prevDecl;
  }

  /**
   * Compiles and runs one cell. `lineOffset` is the number of lines above the
   * code in the notebook cell (magic lines), so errors name the cell's lines.
   */
  async execute(src: string, lineOffset = 0, commit = true): Promise<ExecOutcome> {
    this.executing = true;
    this.interruptPending = false;
    try {
      return await this.executeNow(src, lineOffset, commit);
    } finally {
      this.executing = false;
      this.interruptPending = false;
    }
  }

  private async executeNow(src: string, lineOffset: number, commit: boolean): Promise<ExecOutcome> {
    let compiled = this.compile(src, this.prevDecl);
    if (compiled.diagnostics.some((d) => d.code === MODULE_NOT_FOUND) && this.missingNowInstalled(compiled.diagnostics)) {
      // A package installed moments ago: the service read its folder before the install.
      this.cc.invalidatePackages();
      this.compiled.clear();
      compiled = this.compileNow(src, this.prevDecl);
    }
    if (compiled.diagnostics.length > 0) return { ok: false, error: compileError(src, compiled.diagnostics, lineOffset) };
    if (compiled.module || !compiled.script) return { ok: true, hasValue: false };
    const { script, cellLines } = compiled;
    const filename = `nbscale-cell-${++cellCounter}.js`;
    this.cellMaps.set(filename, { lines: cellLines ?? [], offset: lineOffset });
    try {
      this.loader.refreshLocal();
      const imports: Array<Record<string, unknown>> = [];
      for (const imp of script.imports) {
        const mod = await this.loader.load(imp.specifier);
        imports.push(Object.fromEntries(imp.bindings.map((b) => [b.local, importValue(mod, b)])));
      }
      this.loader.trackLocal();
      this.runtime.imports = imports;
      this.runtime.last = undefined;
    } catch (e) {
      return { ok: false, error: runtimeError(e, filename, src, this.cellMaps, lineOffset) };
    }
    if (this.interruptPending) return { ok: false, error: interruptedError() };
    this.bindings.declare(script.names);
    for (const n of script.functionRefs) this.captured.add(n);
    const imported = new Set(script.imports.flatMap((i) => i.bindings.map((b) => b.local)));
    for (const n of script.names) {
      if (imported.has(n)) this.importNames.add(n);
      else this.importNames.delete(n);
    }
    // What ran before a throw stays, as in a program: the declarations are the cell's from here on.
    if (commit && compiled.declOutput !== undefined) this.prevDecl = compiled.declOutput;
    try {
      const result = vm.runInThisContext(script.script, { filename, breakOnSigint: true });
      if (script.isAsync) {
        const interrupted = new Promise<never>((_, reject) => (this.rejectInterrupt = reject));
        try {
          await Promise.race([result as Promise<unknown>, interrupted]);
        } finally {
          this.rejectInterrupt = null;
        }
      }
    } catch (e) {
      return { ok: false, error: runtimeError(e, filename, src, this.cellMaps, lineOffset) };
    } finally {
      this.runtime.imports = [];
    }
    if (script.hasValue) {
      const value = this.runtime.last;
      this.runtime.last = undefined;
      return { ok: true, hasValue: value !== undefined, value };
    }
    return { ok: true, hasValue: false };
  }

  private missingNowInstalled(diagnostics: Diagnostic[]): boolean {
    const missing = diagnostics.filter((d) => d.code === MODULE_NOT_FOUND).map((d) => /['"]([^'"]+)['"]/.exec(d.messageText)?.[1]);
    return missing.length > 0 && missing.every((m) => m !== undefined && !m.startsWith(".") && this.installed(m));
  }

  /** Whether `name` resolves from the notebook's folder now. */
  private installed(name: string): boolean {
    try {
      this.loader.require.resolve(name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Puts values into the session as if a cell had declared them, so later
   * cells see them with their types (step results, restored versions).
   * Types that don't resolve in this session degrade to `any`, never fail.
   */
  async bind(bindings: Binding[]): Promise<ExecOutcome> {
    if (bindings.length === 0) return { ok: true, hasValue: false };
    const slot = "__nbscale_bindings__";
    (globalThis as Record<string, unknown>)[slot] = Object.fromEntries(bindings.map((b) => [b.name, b.value]));
    const source = (typed: boolean) =>
      bindings
        .map((b) => `${b.kind ?? "const"} ${b.name}: ${typed && b.type ? b.type : "any"} = (globalThis as any).${slot}[${JSON.stringify(b.name)}];`)
        .join("\n");
    try {
      const typed = await this.execute(source(true));
      if (typed.ok) return typed;
      return await this.execute(source(false));
    } finally {
      delete (globalThis as Record<string, unknown>)[slot];
    }
  }

  /**
   * Makes the declarations `check()` produced for code that ran elsewhere (a
   * step on a worker) the session's, and puts the values it sent back under
   * their names, without compiling again. Only valid while the session's
   * declarations are still the ones `check()` saw (`declarations` unchanged).
   */
  adopt(declOutput: string, values: Iterable<[string, unknown]>): void {
    this.prevDecl = declOutput;
    for (const [name, value] of values) this.bindings.set(name, value);
  }

  /** The notebook's own modules that `code` imports, compiled for shipping with a step. */
  localModules(code: string[]): ShippedModules {
    return shipLocalModules(this.options.cwd, code, (f) => this.compiler?.moduleText(f));
  }

  /** The notebook's current value of a name (undefined when absent). */
  valueOf(name: string): unknown {
    return this.bindings.has(name) ? this.bindings.get(name) : undefined;
  }

  has(name: string): boolean {
    return this.bindings.has(name);
  }

  /** Whether `name` is bound by an import: a module, not a notebook value to record. */
  isImport(name: string): boolean {
    return this.importNames.has(name);
  }

  /** Called from the SIGINT handler: stops a pending top-level await. */
  interrupt(): boolean {
    if (!this.rejectInterrupt) {
      // Compiling or loading imports: the cell stops before its code runs.
      if (this.executing) this.interruptPending = true;
      return this.executing;
    }
    const e = new Error("execution interrupted");
    e.name = "KeyboardInterrupt";
    this.rejectInterrupt(e);
    return true;
  }

  complete(src: string, cursor: number): CompletionResult {
    const dir = cellDirectives(src);
    this.cc.load({ session: this.prevDecl, cell: src + "\nexport {};\n", jsx: dir.jsx });
    const info = this.cc.completions(cursor);
    const { start, end } = wordAround(src, cursor);
    const prefix = src.slice(start, cursor);
    const entries = (info?.entries ?? []).filter((e) => e.name.startsWith(prefix) && !e.name.startsWith("__nbscale"));
    const rank = (e: ts.CompletionEntry) => (e.name.startsWith(prefix) ? 0 : 1);
    entries.sort((a, b) => rank(a) - rank(b) || a.sortText.localeCompare(b.sortText) || a.name.localeCompare(b.name));
    const matches = entries.map((e) => e.name);
    return {
      start,
      end,
      matches,
      types: entries.map((e) => ({ text: e.name, type: String(e.kind ?? ""), start, end })),
    };
  }

  inspect(src: string, cursor: number): string | null {
    const dir = cellDirectives(src);
    this.cc.load({ session: this.prevDecl, cell: src + "\nexport {};\n", jsx: dir.jsx });
    // The checker answers for the identifier the cursor is in or just after.
    for (const pos of [cursor, cursor - 1]) {
      if (pos < 0) continue;
      const info = this.cc.quickInfo(pos);
      if (info) return quickInfoText(info);
    }
    return null;
  }

  isComplete(src: string): { status: "complete" | "incomplete" | "invalid"; indent?: string } {
    return isCompleteCell(src);
  }

  reset(): void {
    this.prevDecl = this.options.prelude ?? "";
    this.bindings.reset();
    this.setPrelude();
  }

  close(): void {
    this.compiler?.dispose();
    this.compiler = null;
  }
}

/** TypeScript's "Cannot find module 'x' or its corresponding type declarations". */
const MODULE_NOT_FOUND = 2307;

function wordAround(src: string, cursor: number): { start: number; end: number } {
  let start = cursor;
  while (start > 0 && /[\w$]/.test(src[start - 1])) start--;
  let end = cursor;
  while (end < src.length && /[\w$]/.test(src[end])) end++;
  return { start, end };
}

function compileError(src: string, diagnostics: Diagnostic[], lineOffset: number): CellError {
  const first = diagnostics[0];
  const where = (d: Diagnostic) => `${d.start.line + 1 + (d.fileName ? 0 : lineOffset)}:${d.start.character + 1}`;
  const traceback: string[] = [];
  for (const d of diagnostics) {
    const file = d.fileName ? `${d.fileName} ` : "";
    traceback.push(heading(`error TS${d.code}`, `${file}${where(d)} - ${d.messageText}`));
    if (!d.fileName) traceback.push(...excerpt(src, d.start.line, d.start.character, lineOffset));
  }
  const file = first.fileName ? `${first.fileName} ` : "";
  return {
    ename: "TSError",
    evalue: `${file}${where(first)} - ${first.messageText}${diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : ""}`,
    traceback,
  };
}

function runtimeError(
  e: unknown,
  filename: string,
  src: string,
  maps: ReadonlyMap<string, { lines: number[]; offset: number }>,
  lineOffset: number,
): CellError {
  if (e instanceof Error && (e as NodeJS.ErrnoException).code === "ERR_SCRIPT_EXECUTION_INTERRUPTED") return interruptedError();
  if (e instanceof Error && e.name === "KeyboardInterrupt") return interruptedError();
  if (!(e instanceof Error)) {
    const text = typeof e === "string" ? e : safeInspect(e);
    return { ename: "Uncaught", evalue: text, traceback: [heading("Uncaught", text)] };
  }
  const ename = e.name || e.constructor?.name || "Error";
  const traceback = [heading(ename, e.message)];
  const frames = (e.stack ?? "").split("\n").slice(1);
  let excerptShown = false;
  for (const frame of frames) {
    const m = frame.match(/^\s*at (?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/);
    if (!m) continue;
    const [, fn, file, lineStr] = m;
    const cellFile = /nbscale-cell-\d+\.js$/.exec(file)?.[0];
    if (cellFile) {
      const sameCell = cellFile === filename;
      const map = maps.get(cellFile);
      const tsLine = map?.lines[Number(lineStr) - 1] ?? 0;
      const label = fn && !fn.startsWith("Object.<anonymous>") && fn !== "<anonymous>" && !fn.startsWith("async ") ? fn : "<cell>";
      traceback.push(`    at ${label} (${sameCell ? "cell" : "an earlier cell"}${sameCell ? `, line ${tsLine + 1 + lineOffset}` : ""})`);
      if (sameCell && !excerptShown) {
        const col = (src.split("\n")[tsLine] ?? "").search(/\S/);
        traceback.push(...excerpt(src, tsLine, Math.max(0, col), lineOffset).map((l) => "    " + l));
        excerptShown = true;
      }
    } else if (!file.includes("/nbscale/") && !file.includes("/kernel/dist/") && !file.startsWith("node:") && !file.startsWith("nbscale-bindings")) {
      traceback.push(frame.replace(/^\s*/, "    "));
    }
  }
  return { ename, evalue: e.message, traceback: traceback.filter((l, i) => l !== traceback[i - 1]) };
}

function safeInspect(v: unknown): string {
  try {
    return inspect(v);
  } catch {
    return String(v);
  }
}

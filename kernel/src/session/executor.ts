/**
 * Runs TypeScript cells in this process on tslab's converter: declarations
 * carry across cells as a running `.d.ts` (prevDecl), values live on one
 * exports object, and every cell runs as a function so local code stays fast.
 */
import * as vm from "node:vm";
import * as path from "node:path";
import Module from "node:module";
import { createConverter, isCompleteCode, type Converter, type Diagnostic } from "tslab/dist/converter";

/** TypeScript's "Cannot find module 'x' or its corresponding type declarations". */
const MODULE_NOT_FOUND = 2307;
import { printQuickInfo } from "tslab/dist/inspect";
import { LineMap } from "./line-map";
import { excerpt, heading, interruptedError, type CellError } from "./errors";
import { forwardFolders, notebookForwards } from "./module-resolution";

import type { ExecutionMeta } from "./execution-meta";

/** How a cell ended, plus what the history records about it (steps fill `meta`). */
export type ExecOutcome = (
  | { ok: true; hasValue: boolean; value?: unknown }
  | { ok: false; error: CellError }
) & { meta?: ExecutionMeta };

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
  /**
   * Values for names declared in `prelude`. The converter compiles references
   * to earlier declarations as reads from the session object, so these live
   * there rather than on globalThis.
   */
  preludeValues?: Record<string, unknown>;
}

const GLOBAL_KEY = "__nbscale_cell__";

export class Executor {
  private converter: Converter;
  private prevDecl = "";
  /** The notebook's variables. A Proxy so converter-emitted defineProperty keeps names rewritable. */
  readonly locals: Record<string, unknown>;
  private readonly store: Record<string, unknown> = {};
  private readonly require: NodeJS.Require;
  private rejectInterrupt: ((e: Error) => void) | null = null;
  private cellCounter = 0;

  constructor(private readonly options: ExecutorOptions) {
    forwardFolders(notebookForwards(options.cwd, options.packageDir));
    this.converter = createConverter();
    this.prevDecl = options.prelude ?? "";
    Object.assign(this.store, options.preludeValues ?? {});
    const store = this.store;
    this.locals = new Proxy(store, {
      defineProperty: (_t, prop, attrs) => {
        if (prop === "__esModule") return true;
        store[prop as string] = attrs.get ? attrs.get() : attrs.value;
        return true;
      },
    });
    const base = Module.createRequire(path.join(options.cwd, "__notebook__.js"));
    const builtins = options.builtinModules;
    this.require = new Proxy(base, {
      apply(target, thisArg, args: unknown[]) {
        const id = args[0];
        if (typeof id === "string" && Object.prototype.hasOwnProperty.call(builtins, id)) return builtins[id]();
        return Reflect.apply(target, thisArg, args);
      },
    });
    vm.runInThisContext(`(x) => { globalThis.${GLOBAL_KEY} = x; }`)({ exports: this.locals, require: this.require });
  }

  /**
   * Runs a converter call, rebuilding the converter once if its internal
   * rebuild timer got stuck. That happens when files the compiler watches
   * change under it (e.g. `npm install` in the notebook folder): the compiler
   * schedules a second timer that tslab's synchronous host refuses.
   */
  private withConverter<T>(fn: (c: Converter) => T): T {
    try {
      return fn(this.converter);
    } catch (e) {
      if (!(e instanceof Error && /rebuildTimer|builder is not/.test(e.message))) throw e;
      try {
        this.converter.close();
      } catch {
        // the broken converter may fail to close; it is dropped either way
      }
      this.converter = createConverter();
      return fn(this.converter);
    }
  }

  /**
   * Converts a cell; when it fails only because a package "cannot be found"
   * that is now on disk (installed since the compiler last looked — its file
   * watchers poll, so an `npm install` moments ago is not seen yet), the
   * converter is rebuilt and the cell converted again, once.
   */
  private convert(declarations: string, src: string): ReturnType<Converter["convert"]> {
    const r = this.withConverter((c) => c.convert(declarations, src));
    const missing = r.diagnostics.filter((d) => d.code === MODULE_NOT_FOUND).map((d) => /['"]([^'"]+)['"]/.exec(d.messageText)?.[1]);
    if (missing.length === 0 || !missing.every((m) => m !== undefined && !m.startsWith(".") && this.installed(m))) return r;
    try {
      this.converter.close();
    } catch {
      // dropped either way
    }
    this.converter = createConverter();
    return this.withConverter((c) => c.convert(declarations, src));
  }

  /** Whether `name` resolves from the notebook's folder now. */
  private installed(name: string): boolean {
    try {
      this.require.resolve(name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Type-checks without running: diagnostics and the declarations the cell would add.
   * `declarations` replaces the session's for this check only (a step body sees a `Lazy<T>` name as `T`).
   */
  check(src: string, declarations?: string): { diagnostics: Diagnostic[]; declOutput?: string } {
    const r = this.convert(declarations ?? this.prevDecl, src);
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
    const converted = this.convert(this.prevDecl, src);
    if (converted.diagnostics.length > 0) return { ok: false, error: compileError(src, converted.diagnostics, lineOffset) };
    if (!converted.output) {
      if (commit) this.prevDecl = converted.declOutput ?? "";
      return { ok: true, hasValue: false };
    }
    const cellNo = ++this.cellCounter;
    const filename = `nbscale-cell-${cellNo}.js`;
    // tslab flags top-level `await` but not a top-level `for await` loop.
    const isAsync = converted.hasToplevelAwait || /\bfor\s+await\b/.test(converted.output);
    const prefix = isAsync ? "(async function (exports, require) { " : "(function (exports, require) { ";
    const wrapped = `${prefix}${converted.output}\n})(globalThis.${GLOBAL_KEY}.exports, globalThis.${GLOBAL_KEY}.require)`;
    const lineMap = new LineMap(converted.output, src);
    let result: unknown;
    try {
      result = vm.runInThisContext(wrapped, { filename, breakOnSigint: true });
      if (isAsync) {
        const interrupted = new Promise<never>((_, reject) => (this.rejectInterrupt = reject));
        try {
          await Promise.race([result as Promise<unknown>, interrupted]);
        } finally {
          this.rejectInterrupt = null;
        }
      }
    } catch (e) {
      return { ok: false, error: runtimeError(e, filename, src, lineMap, lineOffset) };
    }
    if (commit) this.prevDecl = converted.declOutput ?? "";
    const lastVar = converted.lastExpressionVar;
    if (lastVar && lastVar in this.store) {
      const value = this.store[lastVar];
      delete this.store[lastVar];
      return { ok: true, hasValue: value !== undefined, value };
    }
    return { ok: true, hasValue: false };
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
    for (const [name, value] of values) this.store[name] = value;
  }

  /** The notebook's current value of a name (undefined when absent). */
  valueOf(name: string): unknown {
    return this.store[name];
  }

  has(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.store, name);
  }

  /** Called from the SIGINT handler: stops a pending top-level await. */
  interrupt(): boolean {
    if (!this.rejectInterrupt) return false;
    const e = new Error("execution interrupted");
    e.name = "KeyboardInterrupt";
    this.rejectInterrupt(e);
    return true;
  }

  complete(src: string, cursor: number): CompletionResult {
    const info = this.withConverter((c) => c.complete(this.prevDecl, src, cursor));
    const entries = info.original?.entries ?? [];
    const kinds = new Map(entries.map((e) => [e.name, e.kind]));
    return {
      start: info.start,
      end: info.end,
      matches: info.candidates,
      types: info.candidates.map((c) => ({ text: c, type: String(kinds.get(c) ?? ""), start: info.start, end: info.end })),
    };
  }

  inspect(src: string, cursor: number): string | null {
    // The checker answers for the identifier the cursor is in or just after.
    for (const pos of [cursor, cursor - 1]) {
      if (pos < 0) continue;
      const info = this.withConverter((c) => c.inspect(this.prevDecl, src, pos));
      if (info) {
        const docs = (info.documentation ?? []).map((d) => d.text).join("");
        const text = printQuickInfo(info);
        return docs && !text.includes(docs) ? `${text}\n\n${docs}` : text;
      }
    }
    return null;
  }

  isComplete(src: string): { status: "complete" | "incomplete" | "invalid"; indent?: string } {
    const r = isCompleteCode(src);
    if (r.completed) return { status: "complete" };
    return { status: "incomplete", indent: r.indent ?? "" };
  }

  reset(): void {
    this.prevDecl = this.options.prelude ?? "";
    for (const k of Object.keys(this.store)) delete this.store[k];
    Object.assign(this.store, this.options.preludeValues ?? {});
  }

  close(): void {
    this.converter.close();
  }
}

function compileError(src: string, diagnostics: Diagnostic[], lineOffset: number): CellError {
  const first = diagnostics[0];
  const where = (d: Diagnostic) => `${d.start.line + 1 + lineOffset}:${d.start.character + 1}`;
  const traceback: string[] = [];
  for (const d of diagnostics) {
    const file = d.fileName ? `${d.fileName} ` : "";
    traceback.push(heading(`error TS${d.code}`, `${file}${where(d)} - ${d.messageText}`));
    if (!d.fileName) traceback.push(...excerpt(src, d.start.line, d.start.character, lineOffset));
  }
  return {
    ename: "TSError",
    evalue: `${where(first)} - ${first.messageText}${diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : ""}`,
    traceback,
  };
}

function runtimeError(e: unknown, filename: string, src: string, lineMap: LineMap, lineOffset: number): CellError {
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
    if (file.endsWith(filename) || /nbscale-cell-\d+\.js$/.test(file)) {
      const jsLine = Number(lineStr) - 1;
      const tsLine = lineMap.tsLine(jsLine);
      const label = fn && !fn.startsWith("Object.<anonymous>") && fn !== "<anonymous>" ? fn : "<cell>";
      const sameCell = file.endsWith(filename);
      traceback.push(`    at ${label} (${sameCell ? "cell" : "an earlier cell"}${sameCell ? `, line ${tsLine + 1 + lineOffset}` : ""})`);
      if (sameCell && !excerptShown) {
        const col = (src.split("\n")[tsLine] ?? "").search(/\S/);
        traceback.push(...excerpt(src, tsLine, Math.max(0, col), lineOffset).map((l) => "    " + l));
        excerptShown = true;
      }
    } else if (!file.includes("/nbscale/") && !file.includes("/kernel/dist/") && !file.startsWith("node:")) {
      traceback.push(frame.replace(/^\s*/, "    "));
    }
  }
  // The cell wrapper and its body share a line; show such frames once.
  return { ename, evalue: e.message, traceback: traceback.filter((l, i) => l !== traceback[i - 1]) };
}

function safeInspect(v: unknown): string {
  try {
    return require("node:util").inspect(v);
  } catch {
    return String(v);
  }
}

/**
 * Loads what cells import, from the notebook's folder: Node built-ins,
 * packages in its node_modules (CommonJS through `require`, ESM-only ones
 * through `import()`), JSON, the notebook's own TypeScript modules (compiled
 * when required, and required afresh once their file changed) and `@module`
 * cells. Imports are loaded before the cell's code runs, as ES modules are.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import Module from "node:module";
import { pathToFileURL } from "node:url";
import { ts } from "../../step/typescript";
import type { ImportBinding } from "./cell-script";

/** A real dynamic import: TypeScript would compile `import()` in this CommonJS file to `require`. */
const dynamicImport = new Function("s", "return import(s)") as (s: string) => Promise<Record<string, unknown>>;

const TS_EXTENSIONS = [".ts", ".tsx", ".mts", ".cts"];

export interface LoadedModule {
  value: unknown;
  esm: boolean;
}

interface ModuleInternals {
  _extensions: Record<string, (m: NodeJS.Module & { _compile(code: string, file: string): void }, file: string) => void>;
  _nodeModulePaths(dir: string): string[];
}

const internals = Module as unknown as ModuleInternals;

/** Compiles the notebook's TypeScript files for `require`: types are checked with the cell, not here. */
function transpileForRequire(source: string, file: string): string {
  return ts.transpileModule(source, {
    fileName: file,
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      jsx: ts.JsxEmit.React,
      inlineSourceMap: true,
    },
  }).outputText;
}

let extensionsInstalled = false;

function installTypeScriptExtensions(): void {
  if (extensionsInstalled) return;
  extensionsInstalled = true;
  for (const ext of TS_EXTENSIONS) {
    // Node 24 strips types itself, but only for files it would also run as ESM; compile them all one way.
    internals._extensions[ext] = (m, file) => m._compile(transpileForRequire(fs.readFileSync(file, "utf8"), file), file);
  }
}

export class ModuleLoader {
  readonly require: NodeJS.Require;
  /** Local files required so far, with what they looked like then. */
  private readonly local = new Map<string, string>();
  private readonly virtual = new Map<string, { text: string; module: NodeJS.Module | null }>();

  constructor(
    private readonly cwd: string,
    private readonly builtins: Record<string, () => unknown>,
    /** The kernel's own folder: never dropped from the cache, even when the notebook sits above it. */
    private readonly exclude?: string,
  ) {
    installTypeScriptExtensions();
    const base = Module.createRequire(path.join(cwd, "__notebook__.js"));
    this.require = new Proxy(base, {
      apply: (target, thisArg, args: unknown[]) => {
        const id = args[0];
        if (typeof id === "string") {
          if (Object.prototype.hasOwnProperty.call(builtins, id)) return builtins[id]();
          const v = this.virtualFile(id);
          if (v) return this.loadVirtual(v);
        }
        const out = Reflect.apply(target, thisArg, args);
        if (typeof id === "string") this.noteLocal(id, target);
        return out;
      },
    });
  }

  /** `@module` cells are modules named by the cell, found as `./name` from the notebook folder. */
  setVirtual(file: string, text: string): void {
    const cur = this.virtual.get(file);
    if (cur && cur.text === text) return;
    this.virtual.set(file, { text, module: null });
  }

  private virtualFile(id: string): string | null {
    if (!id.startsWith(".")) return null;
    const base = path.resolve(this.cwd, id);
    for (const f of [base, ...TS_EXTENSIONS.map((e) => base + e)]) if (this.virtual.has(f)) return f;
    return null;
  }

  private loadVirtual(file: string): unknown {
    const v = this.virtual.get(file) as { text: string; module: NodeJS.Module | null };
    if (!v.module) {
      const m = new Module(file, undefined) as NodeJS.Module & { _compile(code: string, file: string): void; paths: string[]; filename: string };
      m.filename = file;
      m.paths = internals._nodeModulePaths(this.cwd);
      v.module = m;
      m._compile(transpileForRequire(v.text, file), file);
      m.loaded = true;
    }
    return v.module.exports;
  }

  private noteLocal(id: string, req: NodeJS.Require): void {
    if (!id.startsWith(".") && !path.isAbsolute(id)) return;
    try {
      const file = req.resolve(id);
      if (!this.local.has(file)) this.local.set(file, stamp(file));
    } catch {
      // resolved once already by the require that succeeded; nothing to note otherwise
    }
  }

  /**
   * Drops the notebook's own modules from the require cache when any of
   * them changed on disk, so the next import gets the new code (modules
   * that import a changed one are dropped with it: all local ones go).
   */
  refreshLocal(): void {
    this.trackLocal();
    let changed = false;
    for (const [file, was] of this.local) if (stamp(file) !== was) changed = true;
    if (!changed) return;
    for (const file of this.local.keys()) delete require.cache[file];
    this.local.clear();
  }

  /** Notes every notebook file in the require cache (modules the notebook's modules import, too). */
  trackLocal(): void {
    const root = this.cwd + path.sep;
    for (const file of Object.keys(require.cache)) {
      if (this.local.has(file) || !file.startsWith(root) || file.includes(`${path.sep}node_modules${path.sep}`)) continue;
      if (this.exclude && file.startsWith(this.exclude)) continue;
      this.local.set(file, stamp(file));
    }
  }

  async load(specifier: string): Promise<LoadedModule> {
    if (Object.prototype.hasOwnProperty.call(this.builtins, specifier)) return { value: this.builtins[specifier](), esm: false };
    try {
      const value = this.require(specifier);
      return { value, esm: isNamespace(value) };
    } catch (e) {
      if (!isEsmOnly(e)) throw e;
    }
    return { value: await dynamicImport(pathToFileURL(this.resolveEsm(specifier)).href), esm: true };
  }

  /** Where an ESM-only package's entry is, by its package.json `exports` (import condition) or `module`/`main`. */
  private resolveEsm(specifier: string): string {
    if (specifier.startsWith(".") || path.isAbsolute(specifier)) return path.resolve(this.cwd, specifier);
    const parts = specifier.split("/");
    const pkgName = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
    const sub = "." + specifier.slice(pkgName.length);
    for (let dir = this.cwd; ; dir = path.dirname(dir)) {
      const pkgDir = path.join(dir, "node_modules", pkgName);
      const pj = path.join(pkgDir, "package.json");
      if (fs.existsSync(pj)) {
        const pkg = JSON.parse(fs.readFileSync(pj, "utf8")) as { exports?: unknown; module?: string; main?: string };
        const target = pkg.exports !== undefined ? exportTarget(pkg.exports, sub) : sub === "." ? (pkg.module ?? pkg.main ?? "index.js") : sub;
        if (!target) throw new Error(`nbscale: ${pkgName} does not export '${sub}' for import`);
        return path.join(pkgDir, target);
      }
      if (path.dirname(dir) === dir) break;
    }
    throw new Error(`Cannot find module '${specifier}' from ${this.cwd}`);
  }
}

function stamp(file: string): string {
  try {
    const st = fs.statSync(file);
    return `${st.mtimeMs}:${st.size}`;
  } catch {
    return "gone";
  }
}

function isEsmOnly(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === "ERR_REQUIRE_ESM" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED" || code === "ERR_REQUIRE_ASYNC_MODULE";
}

function exportTarget(exports: unknown, sub: string): string | null {
  const conditions = ["node", "import", "default"];
  const pick = (v: unknown): string | null => {
    if (typeof v === "string") return v;
    if (Array.isArray(v)) {
      for (const x of v) {
        const r = pick(x);
        if (r) return r;
      }
      return null;
    }
    if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (conditions.includes(k)) {
          const r = pick(x);
          if (r) return r;
        }
      }
    }
    return null;
  };
  if (typeof exports === "string" || Array.isArray(exports)) return sub === "." ? pick(exports) : null;
  const obj = exports as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length > 0 && !keys[0].startsWith(".")) return sub === "." ? pick(obj) : null;
  if (sub in obj) return pick(obj[sub]);
  for (const k of keys) {
    const star = k.indexOf("*");
    if (star < 0) continue;
    const pre = k.slice(0, star);
    const post = k.slice(star + 1);
    if (sub.startsWith(pre) && sub.endsWith(post)) {
      const t = pick(obj[k]);
      if (t) return t.replace("*", sub.slice(pre.length, sub.length - post.length));
    }
  }
  return null;
}

function isNamespace(v: unknown): boolean {
  return Object.prototype.toString.call(v) === "[object Module]";
}

/** What an import binding is, with esModuleInterop's rules for CommonJS modules. */
export function importValue(mod: LoadedModule, b: ImportBinding): unknown {
  const v = mod.value as Record<string, unknown> | null | undefined;
  const esModule = mod.esm || (v !== null && v !== undefined && (v as { __esModule?: boolean }).__esModule === true);
  if (b.imported === "*") return esModule ? v : namespaceOf(v);
  if (b.imported === "default") return esModule ? v?.default : v;
  return v?.[b.imported];
}

function namespaceOf(v: unknown): unknown {
  if (v === null || (typeof v !== "object" && typeof v !== "function")) return { default: v };
  const ns: Record<string, unknown> = {};
  for (const k of Object.keys(v as object)) {
    Object.defineProperty(ns, k, { enumerable: true, get: () => (v as Record<string, unknown>)[k] });
  }
  Object.defineProperty(ns, "default", { enumerable: true, value: v });
  return ns;
}

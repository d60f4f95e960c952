/**
 * The local modules a step's code runs: the files of the flow's folder that
 * it imports, directly or through other local modules, so that an edit to
 * `./lib` changes the code hash of the steps that use it (and `resume` /
 * `--reuse` run them again instead of reusing a stale result).
 *
 * Which imports a step uses: the relative imports whose bindings its text
 * (or its foreach expression) names, the `require("./x")` / `import("./x")`
 * it makes itself, and — for every step — side-effect imports, re-exports,
 * and whatever the flow's shared code (helpers, constants) uses. Names are
 * matched as words, so a step may be counted as a user when it is not
 * (an over-count re-runs a step; an under-count would reuse a stale one).
 *
 * From each imported file, its own relative imports are followed by a plain
 * reading of its text (`from "./x"`, `import "./x"`, `require("./x")`,
 * `import("./x")`); node_modules and files that don't exist are not
 * followed. The hash covers each file's bytes under its path relative to the
 * flow's folder, so moving the whole folder changes nothing.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/** A relative import statement of the flow file (from compile.ts). */
export interface LocalImport {
  specifier: string;
  /** The local names it binds; empty for `import "./x"` and `export … from "./x"` (every step depends on it). */
  names: string[];
}

const EXTENSIONS = [".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".json"];
const DYNAMIC = /\b(?:require|import)\s*\(\s*(["'`])(\.{1,2}\/[^"'`]*|\.{1,2})\1\s*\)/g;
const ANY = /(?:\bfrom\s*|\bimport\s*|\b(?:require|import)\s*\(\s*)(["'])(\.{1,2}\/[^"']*|\.{1,2})\1/g;

export function isRelative(specifier: string): boolean {
  return specifier === "." || specifier === ".." || specifier.startsWith("./") || specifier.startsWith("../");
}

/** `require("./x")` and `import("./x")` with a literal relative path in some code. */
export function dynamicImports(code: string): string[] {
  return [...code.matchAll(DYNAMIC)].map((m) => m[2]);
}

/** Every relative specifier a module's text names (static and dynamic imports, re-exports). */
export function relativeSpecifiers(code: string): string[] {
  return [...code.matchAll(ANY)].map((m) => m[2]);
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The file Node (or TypeScript) would load for `specifier` from a file in `fromDir`; null if none. */
export function resolveLocal(fromDir: string, specifier: string): string | null {
  const base = resolve(fromDir, specifier);
  const candidates = [base, ...EXTENSIONS.map((e) => base + e), ...EXTENSIONS.map((e) => join(base, `index${e}`))];
  // TypeScript's convention: `./lib.js` in source may name `./lib.ts`.
  const js = /\.(m|c)?js$/.exec(base);
  if (js) candidates.push(base.slice(0, -js[0].length) + `.${js[1] ?? ""}ts`, base.slice(0, -js[0].length) + ".tsx");
  for (const c of candidates) if (isFile(c)) return c;
  return null;
}

/** Which of the flow's relative imports some step code uses. */
export function importsUsedBy(code: string, imports: readonly LocalImport[]): string[] {
  const words = new Set(code.match(/[A-Za-z_$][\w$]*/g) ?? []);
  const used = imports.filter((i) => i.names.length === 0 || i.names.some((n) => words.has(n))).map((i) => i.specifier);
  return [...new Set([...used, ...dynamicImports(code)])];
}

/**
 * SHA-256 of each local file reached from `specifiers` (relative to the flow
 * file), keyed by its path relative to the flow's folder, in path order.
 * A specifier that resolves to no file is listed as `missing:<specifier>`.
 */
export class LocalModules {
  private readonly fileHashes = new Map<string, string>();
  private readonly fileDeps = new Map<string, string[]>();
  private readonly root: string;

  constructor(private readonly flowPath: string) {
    this.root = dirname(flowPath);
  }

  hashes(specifiers: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    const seen = new Set<string>();
    const todo: string[] = [];
    for (const s of specifiers) {
      const file = resolveLocal(this.root, s);
      if (file) todo.push(file);
      else out[`missing:${s}`] = "";
    }
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (seen.has(file) || file.split(sep).includes("node_modules") || file === this.flowPath) continue;
      seen.add(file);
      const { sha, deps } = this.read(file);
      out[relative(this.root, file).split(sep).join("/")] = sha;
      todo.push(...deps);
    }
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  private read(file: string): { sha: string; deps: string[] } {
    let sha = this.fileHashes.get(file);
    let deps = this.fileDeps.get(file);
    if (sha === undefined || deps === undefined) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch {
        bytes = Buffer.alloc(0);
      }
      sha = createHash("sha256").update(bytes).digest("hex");
      deps = file.endsWith(".json")
        ? []
        : relativeSpecifiers(bytes.toString("utf8"))
            .map((s) => resolveLocal(dirname(file), s))
            .filter((f): f is string => f !== null);
      this.fileHashes.set(file, sha);
      this.fileDeps.set(file, deps);
    }
    return { sha, deps };
  }
}

/**
 * Cache of compiled flows, so a repeated `nbscale run` of an unchanged flow
 * never loads the TypeScript compiler (~0.2 s, most of a small run).
 *
 * Where: `$NBSCALE_CACHE_DIR`, else `$XDG_CACHE_HOME/nbscale`, else
 * `~/.cache/nbscale`; entries are `flows/<key>.json`. The key is the SHA-256
 * of everything the compiled result depends on: the source text, the
 * file's base name (the inline source map names it), the compiler's version
 * and options, and nbscale's version and cache format (the static reading
 * of the source is nbscale code). Only successful compiles are stored, so a
 * syntax error is reported afresh on every run.
 *
 * Entries are written to a temporary file and renamed into place: a reader
 * sees a whole entry or none. A damaged or unreadable entry is a miss, and an
 * unwritable cache directory only costs the compile: the cache is never the
 * reason a run fails.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { VERSION } from "../version";
import type { CompiledFlow } from "./compile";

/** Bump when what compile.ts derives from a source changes shape or meaning. */
const CACHE_FORMAT = 2;

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NBSCALE_CACHE_DIR) return env.NBSCALE_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "nbscale");
}

let compilerVersion: string | null = null;

/** Read from the compiler's package.json, so computing a key doesn't load the compiler. */
function typescriptVersion(): string {
  if (compilerVersion === null) {
    try {
      const file = require.resolve("typescript/package.json");
      compilerVersion = (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version ?? "?";
    } catch {
      compilerVersion = "?";
    }
  }
  return compilerVersion;
}

/** The options compile.ts passes to the compiler, spelled out so the key needs no compiler. */
const OPTIONS_KEY = "module=commonjs,target=es2022,esModuleInterop,inlineSourceMap,inlineSources";

export function cacheKey(path: string, source: string): string {
  return createHash("sha256")
    .update(JSON.stringify({ format: CACHE_FORMAT, nbscale: VERSION, typescript: typescriptVersion(), options: OPTIONS_KEY, file: basename(path) }))
    .update("\0")
    .update(source, "utf8")
    .digest("hex");
}

function entryPath(dir: string, key: string): string {
  return join(dir, "flows", `${key}.json`);
}

interface Entry extends CompiledFlow {
  key: string;
}

export function readCompiled(dir: string, key: string): CompiledFlow | null {
  try {
    const entry = JSON.parse(readFileSync(entryPath(dir, key), "utf8")) as Entry;
    if (entry.key !== key || typeof entry.js !== "string" || typeof entry.shared !== "string" || typeof entry.calls !== "object") return null;
    if (!Array.isArray(entry.imports) || !Array.isArray(entry.sharedImports)) return null;
    return { js: entry.js, shared: entry.shared, calls: entry.calls, imports: entry.imports, sharedImports: entry.sharedImports };
  } catch {
    return null;
  }
}

export function writeCompiled(dir: string, key: string, compiled: CompiledFlow): void {
  const final = entryPath(dir, key);
  const tmp = `${final}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
  try {
    mkdirSync(join(dir, "flows"), { recursive: true });
    writeFileSync(tmp, JSON.stringify({ key, ...compiled } satisfies Entry));
    renameSync(tmp, final);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
  }
}

/**
 * A step's own modules, shipped compiled inside its program (step/local-modules.ts):
 * `require("./lib/clean")` from the step, and the requires those modules make
 * of each other, are answered from the program before the target's disk, so
 * a Batch container without the notebook's folder runs them too.
 */
import Module from "node:module";
import * as path from "node:path";
import * as vm from "node:vm";

export const MODULE_EXTENSIONS = [".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".json"];

/** A module's file for a relative specifier, as the notebook's resolver would find it. */
export function resolveLocal(fromDir: string, spec: string, exists: (f: string) => boolean): string | null {
  const base = path.resolve(fromDir, spec);
  const candidates = [base, ...MODULE_EXTENSIONS.map((e) => base + e), ...MODULE_EXTENSIONS.map((e) => path.join(base, "index" + e))];
  // `./x.js` written for a `./x.ts` file (the ESM convention).
  if (/\.[mc]?js$/.test(base)) candidates.push(base.replace(/\.([mc]?)js$/, ".$1ts"), base.replace(/\.js$/, ".tsx"));
  for (const c of candidates) if (exists(c)) return c;
  return null;
}

/** `base` (the notebook folder's require) with the shipped modules in front of it. */
export function withShippedModules(base: NodeJS.Require, cwd: string, shipped: Record<string, string> | undefined): NodeJS.Require {
  if (!shipped || Object.keys(shipped).length === 0) return base;
  const files = new Map(Object.entries(shipped).map(([rel, js]) => [path.resolve(cwd, rel), js]));
  const cache = new Map<string, { exports: unknown }>();
  const load = (file: string): unknown => {
    const hit = cache.get(file);
    if (hit) return hit.exports;
    const module = { exports: {} as unknown, filename: file, id: file, loaded: false };
    cache.set(file, module);
    const fallback = Module.createRequire(file);
    const req = ((id: string) => resolveFrom(path.dirname(file), id, fallback)) as NodeJS.Require;
    const fn = vm.runInThisContext(`(function (exports, require, module, __filename, __dirname) {${files.get(file)}\n})`, { filename: file }) as (
      ...a: unknown[]
    ) => void;
    fn(module.exports, req, module, file, path.dirname(file));
    module.loaded = true;
    return module.exports;
  };
  const resolveFrom = (dir: string, id: string, fallback: NodeJS.Require): unknown => {
    if (id.startsWith("./") || id.startsWith("../")) {
      const file = resolveLocal(dir, id, (f) => files.has(f));
      if (file) return load(file);
    }
    return fallback(id);
  };
  return new Proxy(base, {
    apply(target, thisArg, args: unknown[]) {
      const id = args[0];
      if (typeof id === "string" && (id.startsWith("./") || id.startsWith("../"))) {
        const file = resolveLocal(cwd, id, (f) => files.has(f));
        if (file) return load(file);
      }
      return Reflect.apply(target, thisArg, args);
    },
  });
}

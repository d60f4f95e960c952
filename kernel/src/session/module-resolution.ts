/**
 * Makes `import ... from "nbscale"` type-check in any notebook folder, even
 * one without node_modules/nbscale, by answering the compiler's file-system
 * questions about that folder from this package's own files.
 */
import * as path from "node:path";
import * as tslabTs from "@tslab/typescript-for-tslab";

let installed = false;

export function forwardPackageTypes(cwd: string, packageName: string, packageDir: string): void {
  if (installed) return;
  installed = true;
  const sys = tslabTs.sys as unknown as Record<string, (...args: unknown[]) => unknown>;
  const virtualRoot = path.join(cwd, "node_modules", packageName);
  const realRootExists = sys.directoryExists(virtualRoot) as boolean;
  if (realRootExists) return; // the user installed their own copy: respect it
  const forward = (p: unknown): unknown => {
    if (typeof p !== "string") return p;
    const rel = path.relative(virtualRoot, p);
    if (rel.startsWith("..") || path.isAbsolute(rel)) return p;
    return path.join(packageDir, rel);
  };
  for (const fn of ["readFile", "fileExists", "directoryExists", "getDirectories", "realpath", "readDirectory"]) {
    const orig = sys[fn];
    if (typeof orig !== "function") continue;
    sys[fn] = function (this: unknown, p: unknown, ...rest: unknown[]) {
      return orig.call(this, forward(p), ...rest);
    };
  }
}

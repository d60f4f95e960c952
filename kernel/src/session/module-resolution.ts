/**
 * Answers the TypeScript compiler's file-system questions about some package
 * folders from other folders:
 * - `nbscale` types resolve in any notebook folder, even one without
 *   node_modules/nbscale;
 * - `tslab` types come from a small declaration file of ours rather than
 *   tslab's own, which imports the whole compiler API and makes the first
 *   `import * as tslab from "tslab"` take seconds to type-check.
 */
import * as path from "node:path";
import * as tslabTs from "@tslab/typescript-for-tslab";

export interface FolderForward {
  /** Absolute folder the compiler asks about. */
  from: string;
  /** Absolute folder that answers instead. */
  to: string;
}

let installed = false;

export function forwardFolders(forwards: FolderForward[]): void {
  if (installed) return;
  installed = true;
  const sys = tslabTs.sys as unknown as Record<string, (...args: unknown[]) => unknown>;
  const forward = (p: unknown): unknown => {
    if (typeof p !== "string") return p;
    for (const f of forwards) {
      const rel = path.relative(f.from, p);
      if (rel.startsWith("..") || path.isAbsolute(rel)) continue;
      // A package's own dependencies (e.g. tslab's @types/node) stay where they are.
      if (rel.split(path.sep)[0] === "node_modules") continue;
      return path.join(f.to, rel);
    }
    return p;
  };
  for (const fn of ["readFile", "fileExists", "directoryExists", "getDirectories", "realpath", "readDirectory"]) {
    const orig = sys[fn];
    if (typeof orig !== "function") continue;
    sys[fn] = function (this: unknown, p: unknown, ...rest: unknown[]) {
      return orig.call(this, forward(p), ...rest);
    };
  }
}

/** The forwards nbscale needs for a notebook folder `cwd`. */
export function notebookForwards(cwd: string, packageDir: string): FolderForward[] {
  const forwards: FolderForward[] = [];
  const own = path.join(cwd, "node_modules", "nbscale");
  if (!tslabTs.sys.directoryExists(own)) forwards.push({ from: own, to: packageDir });
  const shim = path.join(packageDir, "assets", "tslab-types");
  // tslab's converter maps <cwd>/node_modules/tslab to its own install folder before asking.
  const tslabDir = path.dirname(require.resolve("tslab/package.json"));
  forwards.push({ from: tslabDir, to: shim });
  const userTslab = path.join(cwd, "node_modules", "tslab");
  if (userTslab !== tslabDir) forwards.push({ from: userTslab, to: shim });
  return forwards;
}

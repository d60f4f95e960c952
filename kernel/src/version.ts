import { readFileSync } from "node:fs";
import { join } from "node:path";

function readVersion(): string {
  // dist/src/version.js -> package.json two levels up from dist/src.
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(join(__dirname, rel), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "nbscale" && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return "0.0.0";
}

/** The nbscale package version. */
export const VERSION: string = readVersion();

/** Root of the installed nbscale package (holds package.json and dist/). */
export const PACKAGE_DIR: string = join(__dirname, "..", "..");

/** The environment recorded with every execution. */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

let cachedVersion: string | undefined;

/** nbscale's own version, from the nearest package.json named "nbscale" above this file. */
export function nbscaleVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = "unknown";
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "nbscale" && pkg.version) {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      /* keep walking up */
    }
  }
  return cachedVersion;
}

const lockCache = new Map<string, { stamp: string; sha256: string }>();

/**
 * sha256 of `<dir>/package-lock.json`, or null when there is none. Cached by
 * size+mtime: it is asked for on every cell and lockfiles can be megabytes.
 */
export function packageLockSha256(dir: string): string | null {
  const file = join(dir, "package-lock.json");
  try {
    const st = statSync(file);
    const stamp = `${st.size}:${st.mtimeMs}`;
    const hit = lockCache.get(file);
    if (hit && hit.stamp === stamp) return hit.sha256;
    const sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
    lockCache.set(file, { stamp, sha256 });
    return sha256;
  } catch {
    return null;
  }
}

export function environmentInfo(notebookDir: string | null): {
  node: string;
  nbscale: string;
  package_lock_sha256: string | null;
} {
  return {
    node: process.version,
    nbscale: nbscaleVersion(),
    package_lock_sha256: notebookDir === null ? null : packageLockSha256(notebookDir),
  };
}

/**
 * What the container runs, so that no Dockerfile is needed: a plain Node
 * image installs the exact nbscale the kernel runs (unless the image already
 * has it), restores the notebook folder's dependencies from the S3 cache (or
 * installs them from the package-lock.json and fills the cache), then becomes
 * the worker: `nbscale worker --task DATASTORE TASK`.
 *
 * Per-job values (datastore, task, deps) arrive as environment variables and
 * are only ever expanded inside double quotes: nothing a user typed is parsed
 * by the shell. The version is baked in (it is validated, and it is part of
 * the job definition's hash: a new nbscale registers a new definition).
 */
import { createHash } from "node:crypto";

/** Keys under the datastore prefix where Batch keeps its own objects. */
export const DEPS_PREFIX = "batch/deps";

export function bootstrapScript(version: string): string {
  if (!/^[0-9A-Za-z.+-]+$/.test(version)) throw new Error(`unexpected nbscale version ${JSON.stringify(version)}`);
  return [
    "set -eu",
    `want='${version}'`,
    'work="${NBSCALE_WORKDIR:-/tmp/nbscale-job}"',
    'mkdir -p "$work"',
    'cd "$work"',
    // An image with the right nbscale already installed (or `--image` built for it) skips npm.
    'have=""',
    'if command -v nbscale >/dev/null 2>&1; then have="$(nbscale --version 2>/dev/null || true)"; fi',
    'if [ "$have" != "$want" ]; then',
    // From where the kernel says (worker-package.ts): its own package in S3, a registry, a URL.
    '  pkg_spec="${NBSCALE_WORKER_PACKAGE:-nbscale@$want}"',
    // A presigned URL's signature stays out of the job's log.
    '  shown="${pkg_spec%%\\?*}"',
    '  echo "[nbscale] installing nbscale $want from $shown" >&2',
    // 75 (EX_TEMPFAIL): a failed install is worth a retry; the worker's own 1 and 2 are not (submit.ts).
    '  npm install --global --no-audit --no-fund --loglevel=error "$pkg_spec" >&2 || exit 75',
    '  have="$(nbscale --version 2>/dev/null || true)"',
    // 78 (EX_CONFIG): another version would not read the kernel's tasks; a retry installs the same.
    '  if [ "$have" != "$want" ]; then echo "[nbscale] $shown installed nbscale ${have:-(none)}, not $want: set NBSCALE_WORKER_PACKAGE to the kernel\'s version" >&2; exit 78; fi',
    "fi",
    'if [ -n "${NBSCALE_DEPS:-}" ]; then',
    // The package root of whichever nbscale is on PATH (global install, or a preinstalled one).
    '  pkg="$(node -e \'process.stdout.write(require("path").resolve(require("fs").realpathSync(process.argv[1]), "..", ".."))\' "$(command -v nbscale)")"',
    '  node "$pkg/dist/src/backends/batch/deps-cache.js" "$NBSCALE_DATASTORE" "$NBSCALE_DEPS" "$work" >&2 || exit 75',
    "fi",
    'exec nbscale worker --task "$NBSCALE_DATASTORE" "$NBSCALE_TASK"',
  ].join("\n");
}

/** The container command of the job definition. */
export function containerCommand(version: string): string[] {
  return ["sh", "-c", bootstrapScript(version), "nbscale-batch-job"];
}

/**
 * Where installed dependencies are cached: by the lockfile's hash, and by the
 * Node major, OS and CPU architecture of the container (native addons differ
 * between them, e.g. x86_64 vs Graviton instances).
 */
export function depsCacheKey(lockSha256: string, nodeVersion: string, platform: string, arch: string): string {
  if (!/^[0-9a-f]{64}$/.test(lockSha256)) throw new Error(`not a sha256: ${lockSha256}`);
  const major = /^v?(\d+)/.exec(nodeVersion)?.[1] ?? "unknown";
  return `${DEPS_PREFIX}/${lockSha256}/node_modules-node${major}-${platform}-${arch}.tgz`;
}

/** Where the kernel puts the notebook folder's package.json and package-lock.json for the job. */
export function depsManifestKey(lockSha256: string, file: "package.json" | "package-lock.json"): string {
  return `${DEPS_PREFIX}/${lockSha256}/${file}`;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Run in the job's container by the bootstrap script (bootstrap.ts), before
 * the worker starts:
 *
 *   node deps-cache.js DATASTORE LOCK_SHA256 WORKDIR
 *
 * Puts the notebook folder's dependencies in WORKDIR/node_modules: from the
 * S3 cache when a job with the same lockfile ran on the same Node major, OS
 * and CPU before (one download and a `tar -x`), otherwise by `npm ci` from
 * the package.json + package-lock.json the kernel stored under the lockfile's
 * hash, then fills the cache for the next job. A cache that can't be written
 * (permissions) costs the next job an install, never this job its run.
 */
import { spawn } from "node:child_process";
import { createReadStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StorageBackend } from "../../store/backend";
import { backendFor } from "../../store/backends";
import { resolveDatastore } from "../../store/location";
import { depsCacheKey, depsManifestKey, sha256Hex } from "./bootstrap";

const log = (text: string) => process.stderr.write(`[nbscale deps] ${text}\n`);

function run(cmd: string, args: string[], cwd: string, input?: AsyncIterable<Uint8Array>): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: [input ? "pipe" : "ignore", "inherit", "inherit"] });
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")} exited with code ${code}`))));
    if (input && p.stdin) {
      const stdin = p.stdin;
      void (async () => {
        for await (const chunk of input) if (!stdin.write(chunk)) await new Promise((r) => stdin.once("drain", r));
        stdin.end();
      })().catch(reject);
    }
  });
}

async function* objectChunks(backend: StorageBackend, key: string): AsyncGenerator<Uint8Array> {
  const reader = await backend.openRead(key);
  if (!reader) return;
  try {
    for (let left = reader.size; left > 0;) {
      const chunk = new Uint8Array(Math.min(left, 1 << 20));
      await reader.read(chunk);
      left -= chunk.byteLength;
      yield chunk;
    }
  } finally {
    await reader.close();
  }
}

export async function restoreOrInstall(datastore: string, lockSha: string, workdir: string): Promise<"cache" | "installed"> {
  const backend = backendFor(resolveDatastore({ flag: datastore, env: process.env, cwd: workdir }));
  const key = depsCacheKey(lockSha, process.version, process.platform, process.arch);
  mkdirSync(workdir, { recursive: true });
  if (await backend.stat(key)) {
    await run("tar", ["-xzf", "-", "-C", workdir], workdir, objectChunks(backend, key));
    log(`node_modules restored from the cache (${key})`);
    return "cache";
  }
  const lock = await backend.get(depsManifestKey(lockSha, "package-lock.json"));
  const pkg = await backend.get(depsManifestKey(lockSha, "package.json"));
  if (!lock || !pkg) {
    throw new Error(`the notebook's package.json/package-lock.json are not in the datastore under ${depsManifestKey(lockSha, "package-lock.json")}`);
  }
  if (sha256Hex(lock) !== lockSha) throw new Error(`the stored package-lock.json does not hash to ${lockSha}: not installing from it`);
  writeFileSync(join(workdir, "package.json"), pkg);
  writeFileSync(join(workdir, "package-lock.json"), lock);
  log(`installing the notebook's dependencies (npm ci, lockfile ${lockSha.slice(0, 12)})`);
  await run("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], workdir);
  mkdirSync(join(workdir, "node_modules"), { recursive: true });
  try {
    // A file first: a tar that fails halfway must not become a cache entry.
    const archive = join(workdir, ".nbscale-node_modules.tgz");
    await run("tar", ["-czf", archive, "node_modules"], workdir);
    await backend.putIfAbsent(key, createReadStream(archive));
    rmSync(archive, { force: true });
    log(`node_modules cached for later jobs (${key})`);
  } catch (e) {
    log(`could not fill the cache (${(e as Error).message}); later jobs will install again`);
  }
  return "installed";
}

if (require.main === module) {
  const [datastore, lockSha, workdir] = process.argv.slice(2);
  if (!datastore || !lockSha || !workdir) {
    log("usage: deps-cache.js DATASTORE LOCK_SHA256 WORKDIR");
    process.exit(2);
  }
  restoreOrInstall(datastore, lockSha, workdir).then(
    () => process.exit(0),
    (e) => {
      log(`failed: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}

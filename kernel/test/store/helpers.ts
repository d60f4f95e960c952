import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { CliCommand } from "../../src/cli/command";
import { thisWriter, type WriterIdentity } from "../../src/store/writer";

/** Compiled store module, for child processes (path is relative to the compiled test). */
export const STORE_MODULE = join(__dirname, "..", "..", "src", "store", "index.js");

export async function tmpStoreDir(prefix = "nbscale-store-", parent = tmpdir()): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(parent, prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Total bytes of every file under `dir` (recursively). */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else total += (await stat(p)).size;
  }
  return total;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON (the `--json` contract), if any. */
  json: unknown;
}

export async function runCli(cmd: CliCommand, argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on("data", (c: Buffer) => chunks.out.push(c));
  err.on("data", (c: Buffer) => chunks.err.push(c));
  const code = await cmd.run(argv, { stdout: out, stderr: err, env, cwd });
  const stdout = Buffer.concat(chunks.out).toString("utf8");
  const stderr = Buffer.concat(chunks.err).toString("utf8");
  const lines = stdout.trimEnd().split("\n");
  let json: unknown = undefined;
  try {
    json = JSON.parse(lines[lines.length - 1]);
  } catch {
    /* not JSON */
  }
  return { code, stdout, stderr, json };
}

export interface Child {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(signal: NodeJS.Signals): void;
  /** What it printed so far. */
  stdoutSoFar(): string;
}

/** Runs a JS snippet in a fresh `node` process with STORE resolved to the store module. */
export function runNode(script: string, args: string[] = [], env?: Record<string, string>): Child {
  const child = spawn(process.execPath, ["-e", `const STORE = require(${JSON.stringify(STORE_MODULE)});\n${script}`, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { pid: child.pid ?? -1, done, kill: (s) => child.kill(s), stdoutSoFar: () => stdout };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A writer process on this host that has exited: it can never commit what it wrote. */
export function deadWriter(): WriterIdentity {
  const child = spawnSync(process.execPath, ["-e", ""]);
  const me = thisWriter();
  // A start no process of this boot has had (tick 1 is before any user process), so a reused pid doesn't pass for it.
  return { host: me.host, pid: child.pid as number, start: me.start ? `${me.start.split(":")[0]}:1` : null };
}

/** A writer on another host: fsck can't tell whether it still runs. */
export const REMOTE_WRITER: WriterIdentity = { host: "batch-job-7f3a.ec2.internal", pid: 1, start: null };

/**
 * moto's AWS server (the real S3 HTTP API, in the project's .venv) on a free
 * loopback port, as tests/moto_server.py starts it for the Python tests.
 */
import { ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { S3Backend } from "../../src/store/s3-backend";

const ROOT = join(__dirname, "..", "..", "..", "..");
const MOTO = process.env.NBSCALE_MOTO_SERVER ?? join(ROOT, ".venv", "bin", "moto_server");

export const MOTO_ENV = {
  AWS_ACCESS_KEY_ID: "testing",
  AWS_SECRET_ACCESS_KEY: "testing",
  AWS_REGION: "us-east-1",
  AWS_SDK_JS_SUPPRESS_NODE_VERSION_WARNING: "1",
};

/**
 * moto binds port 0 itself and prints the port it got: a port picked here and passed
 * in could be taken by another test run's server in between, and this run would then
 * talk to that one. Its request log keeps being read (and dropped) so it never blocks.
 */
function portOf(proc: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = "";
    let found = false;
    const timer = setTimeout(() => reject(new Error("moto_server did not say which port it listens on within 30 s")), 30_000);
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      if (found) return;
      seen += chunk;
      const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(seen);
      if (!m) return;
      found = true;
      clearTimeout(timer);
      resolve(Number(m[1]));
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      if (!found) reject(new Error(`moto_server exited (${code}) before listening: ${seen.trim()}`));
    });
  });
}

export interface Moto {
  url: string;
  /** Environment for a child process that talks to this server. */
  env: Record<string, string>;
  /** A backend on a fresh prefix of the test bucket. */
  backend(prefix: string): S3Backend;
  stop(): Promise<void>;
}

export async function startMoto(bucket = "nbscale-races"): Promise<Moto> {
  if (!existsSync(MOTO)) throw new Error(`${MOTO} is missing: run scripts/setup.sh (it installs moto into .venv), or set NBSCALE_MOTO_SERVER`);
  const proc: ChildProcess = spawn(MOTO, ["-H", "127.0.0.1", "-p", "0"], { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let port: number;
  try {
    port = await portOf(proc);
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  const url = `http://127.0.0.1:${port}`;
  const config = { endpoint: url, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "testing", secretAccessKey: "testing" } };
  const client = new S3Client(config);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`moto_server did not answer within 30 s: ${String(e)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  client.destroy();
  return {
    url,
    env: { ...MOTO_ENV, AWS_ENDPOINT_URL: url },
    backend: (prefix) => new S3Backend({ bucket, prefix }, config),
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
      }),
  };
}

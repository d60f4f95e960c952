/**
 * moto's AWS server (the real S3 HTTP API, in the project's .venv) on a free
 * loopback port, as tests/moto_server.py starts it for the Python tests.
 */
import { ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
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
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn(MOTO, ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore", detached: true });
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

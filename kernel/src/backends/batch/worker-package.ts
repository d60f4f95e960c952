/**
 * Where a job's container installs nbscale from, when its image doesn't
 * have the kernel's version (bootstrap.ts): NBSCALE_WORKER_PACKAGE.
 *
 *   auto (default)  the npm registry when it has this exact version, else s3
 *   npm             `nbscale@<version>` from the npm registry (or the mirror
 *                   the image's npm is configured for)
 *   s3              the running kernel's own package: `npm pack` of it,
 *                   uploaded to the datastore under its sha256 (once), and
 *                   installed by the job from a presigned URL, so nothing has
 *                   to be published; its dependencies still come from the
 *                   job's npm registry
 *   anything else   an npm install spec, as is: a tarball URL, `nbscale@1.2.3`,
 *                   `git+https://…`
 *
 * The spec travels to each job as NBSCALE_WORKER_PACKAGE (the job
 * definition stays the same); a presigned URL is a read grant for that one
 * object until it expires, and it is the only credential-like value a job
 * carries.
 */
import { execFile } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { S3Client } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import type { StorageBackend } from "../../store/backend";
import type { DatastoreLocation } from "../../store/location";
import { BatchConfigError } from "./settings";

/** Next to the dependency cache (bootstrap.ts DEPS_PREFIX): one lifecycle rule on `batch/` expires both. */
export const PACKAGES_PREFIX = "batch/packages";
/** SigV4's longest validity; credentials that expire sooner end the URL sooner. */
const URL_SECONDS = 7 * 24 * 3600;

export type PackageChoice = { kind: "auto" } | { kind: "npm" } | { kind: "s3" } | { kind: "spec"; spec: string };

export function packageChoice(env: NodeJS.ProcessEnv): PackageChoice {
  const v = env.NBSCALE_WORKER_PACKAGE?.trim();
  if (!v || v === "auto") return { kind: "auto" };
  if (v === "npm" || v === "s3") return { kind: v };
  // Only ever expanded inside double quotes by the job's shell; newlines would still end the word.
  if (/[\n\r"`$\\]/.test(v)) {
    throw new BatchConfigError(
      "NBSCALE_WORKER_PACKAGE",
      `NBSCALE_WORKER_PACKAGE=${JSON.stringify(v)} has quotes, backslashes, \`$\` or newlines; give auto, npm, s3 or an npm install spec (a tarball URL, nbscale@VERSION)`,
    );
  }
  return { kind: "spec", spec: v };
}

export interface WorkerPackage {
  /** What the job's `npm install --global` gets. */
  spec: string;
  /** For messages: where it comes from. */
  from: string;
}

export interface PackageContext {
  env: NodeJS.ProcessEnv;
  version: string;
  /** The nbscale package the kernel runs (its package.json, dist/ and bin/). */
  packageDir: string;
  backend: StorageBackend;
  datastore: Extract<DatastoreLocation, { kind: "s3" }>;
  /** Whether nbscale@version is on the registry (null: can't tell). */
  published(): Promise<boolean | null>;
}

export async function resolveWorkerPackage(c: PackageContext): Promise<WorkerPackage> {
  const choice = packageChoice(c.env);
  if (choice.kind === "spec") return { spec: choice.spec, from: `NBSCALE_WORKER_PACKAGE=${choice.spec}` };
  const npm = { spec: `nbscale@${c.version}`, from: "the npm registry" };
  if (choice.kind === "npm") return npm;
  // auto: a registry that can't be asked (offline kernel) may still serve the job; s3 works either way.
  if (choice.kind === "auto" && (await c.published()) === true) return npm;
  const key = await uploadOwnPackage(c);
  return { spec: await presignedGet(c.datastore, key), from: `the kernel's own package, ${c.datastore.path}/${key}` };
}

const packed = new Map<string, Promise<{ bytes: Buffer; file: string }>>();

/** `npm pack` of the running kernel's package, once per kernel process. */
export function packOwnPackage(packageDir: string): Promise<{ bytes: Buffer; file: string }> {
  let p = packed.get(packageDir);
  if (!p) {
    p = (async () => {
      const out = mkdtempSync(join(tmpdir(), "nbscale-pack-"));
      try {
        // --ignore-scripts: the kernel is running from this build, so it is the one to ship as is.
        await promisify(execFile)("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", out], { cwd: packageDir, timeout: 120_000 });
        const file = readdirSync(out).find((f) => f.endsWith(".tgz"));
        if (!file) throw new Error(`npm pack in ${packageDir} wrote no tarball`);
        return { bytes: readFileSync(join(out, file)), file };
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    })();
    p.catch(() => packed.delete(packageDir));
    packed.set(packageDir, p);
  }
  return p;
}

/** Uploads the kernel's package under its hash (a no-op when it is there); returns its key under the datastore. */
export async function uploadOwnPackage(c: Pick<PackageContext, "packageDir" | "backend">): Promise<string> {
  const { bytes, file } = await packOwnPackage(c.packageDir);
  const sha = createHash("sha256").update(bytes).digest("hex");
  const key = `${PACKAGES_PREFIX}/${sha}/${file}`;
  // A HEAD first: the same package is sent once, not once per step.
  if (!(await c.backend.stat(key))) await c.backend.putIfAbsent(key, [bytes]);
  return key;
}

/** node:crypto as the signer's hash (the SDK's own hash packages are not a dependency of ours). */
class NodeSha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash("sha256") : createHmac("sha256", Buffer.from(secret as ArrayBuffer));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(typeof data === "string" ? data : Buffer.from(data as ArrayBuffer));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
}

/**
 * A presigned GET URL for `key` under the datastore, with the kernel's
 * credentials and region, at the endpoint the kernel uses (AWS_ENDPOINT_URL
 * and path-style addressing for moto or LocalStack, as the S3 backend does).
 */
export async function presignedGet(loc: Extract<DatastoreLocation, { kind: "s3" }>, key: string, seconds = URL_SECONDS): Promise<string> {
  const s3 = new S3Client({});
  try {
    const region = await s3.config.region();
    const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL;
    const objectKey = `${loc.prefix ? `${loc.prefix}/` : ""}${key}`;
    const path = (p: string) => "/" + p.split("/").map(encodeURIComponent).join("/");
    const url = endpoint ? new URL(endpoint) : new URL(`https://${loc.bucket}.s3.${region}.amazonaws.com`);
    const signer = new SignatureV4({ credentials: s3.config.credentials, region, service: "s3", sha256: NodeSha256, uriEscapePath: false });
    const signed = await signer.presign(
      {
        method: "GET",
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port ? Number(url.port) : undefined,
        path: endpoint ? path(`${loc.bucket}/${objectKey}`) : path(objectKey),
        query: {},
        // S3 signs no payload hash for a presigned URL.
        headers: { host: url.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
      },
      { expiresIn: seconds },
    );
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(signed.query ?? {})) {
      for (const one of Array.isArray(v) ? v : [v]) if (one !== null && one !== undefined) q.append(k, one);
    }
    return `${url.protocol}//${url.host}${signed.path}?${q.toString()}`;
  } finally {
    s3.destroy();
  }
}

/**
 * Checks made before anything is uploaded: a region, credentials, the
 * datastore's bucket, then the queue (capacity.ts). Each failure is a
 * BatchConfigError naming the setting and how to set it.
 */
import { BatchClient } from "@aws-sdk/client-batch";
import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { BatchConfigError } from "./settings";

const CREDENTIAL_HELP =
  "set AWS_PROFILE (after `aws configure` or `aws sso login`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment the kernel starts in, and restart the kernel";

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms / 1000} s`)), ms))),
  ]);
}

export async function checkRegionAndCredentials(client: BatchClient): Promise<string> {
  let region: string;
  try {
    region = await client.config.region();
  } catch {
    region = "";
  }
  if (!region) {
    throw new BatchConfigError(
      "AWS_REGION",
      "no AWS region: set AWS_REGION (e.g. AWS_REGION=us-east-1) or a region in your AWS profile, and restart the kernel",
    );
  }
  try {
    // The SDK's default chain: environment, profile/SSO, container and instance roles.
    const creds = await withTimeout(client.config.credentials(), 15_000, "looking up AWS credentials");
    if (!creds?.accessKeyId) throw new Error("empty credentials");
  } catch (e) {
    throw new BatchConfigError("AWS credentials", `no AWS credentials found (${(e as Error).message}): ${CREDENTIAL_HELP}`);
  }
  return region;
}

export async function checkBucket(bucket: string, datastore: string): Promise<void> {
  const s3 = new S3Client({});
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (e as Error).name === "NotFound" || (e as Error).name === "NoSuchBucket") {
      throw new BatchConfigError(
        "NBSCALE_DATASTORE",
        `the datastore's bucket \`${bucket}\` (NBSCALE_DATASTORE=${datastore}) does not exist: create it (\`aws s3 mb s3://${bucket}\`) or point NBSCALE_DATASTORE at one that does`,
      );
    }
    if (status === 403) {
      throw new BatchConfigError(
        "NBSCALE_DATASTORE",
        `no access to the datastore's bucket \`${bucket}\` with these AWS credentials: ${CREDENTIAL_HELP}, as a principal allowed to use the bucket`,
      );
    }
    throw e;
  } finally {
    s3.destroy();
  }
}

const published = new Map<string, Promise<boolean | null>>();

/**
 * Whether `nbscale@version` is on the npm registry the default image installs
 * from: true/false, or null when the registry can't be asked (offline, slow).
 * Asked once per kernel and version.
 */
export function nbscalePublished(version: string, env: NodeJS.ProcessEnv): Promise<boolean | null> {
  let p = published.get(version);
  if (!p) {
    const registry = (env.npm_config_registry || "https://registry.npmjs.org/").replace(/\/?$/, "/");
    p = fetch(`${registry}nbscale/${encodeURIComponent(version)}`, { method: "GET", signal: AbortSignal.timeout(3000) }).then(
      (r) => (r.status === 404 ? false : r.ok ? true : null),
      () => null,
    );
    published.set(version, p);
  }
  return p;
}

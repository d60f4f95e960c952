/**
 * The datastore in S3 (or anything that speaks its API, e.g. moto in tests),
 * with the same guarantees as a directory:
 *
 * - immutable objects appear whole or not at all: one PUT for small content,
 *   a multipart upload for large content (nothing is visible until it
 *   completes), both conditional on the key being absent (`If-None-Match: *`);
 * - an upload whose bytes don't hash to what the caller expected is aborted,
 *   never completed;
 * - incomplete multipart uploads are the "temp files" fsck lists and cleans;
 *   their age counts from their last uploaded part, not from their start: a
 *   live upload adds a part every few seconds, so however long the value
 *   takes, fsck's grace applies to how long the upload has been idle;
 * - throttling, 5xx answers and dropped connections are retried with
 *   backoff by the SDK's adaptive retry strategy; a download cut short is
 *   resumed where it stopped (a Range request on the same ETag), since the
 *   SDK has already handed over the answer when its body breaks;
 * - a conditional write whose first answer was lost and whose retry then
 *   finds the key taken checks whether the object there is its own bytes;
 * - what still fails names the datastore, the request and the attempts
 *   (`DatastoreUnavailableError`).
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { ChunkSource, checkKey, ObjectReader, ObjectStat, PutOptions, PutResult, StorageBackend, TempEntry } from "./backend";
import { ContentChangedError, DatastoreConfigError, DatastoreUnavailableError } from "./errors";

/** S3's minimum part size (except the last); also our threshold for multipart. */
const PART = 8 << 20;
const HOST = hostname();
const MAX_ATTEMPTS = 6;
/** Resumes of one download whose body broke off. */
const BODY_RESUMES = 5;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Full-jitter exponential backoff, as the SDK's own retries. */
const backoffMs = (attempt: number) => Math.random() * Math.min(5000, 100 * 2 ** attempt);

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slash ("" for the bucket root). */
  prefix: string;
}

export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!m || !m[1]) throw new Error(`${url}: expected s3://bucket/prefix`);
  return { bucket: m[1], prefix: m[2].replace(/^\/+|\/+$/g, "") };
}

function httpStatus(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}
function isMissing(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  return httpStatus(e) === 404 || name === "NoSuchKey" || name === "NotFound";
}
function attemptsOf(e: unknown): number {
  return (e as { $metadata?: { attempts?: number } })?.$metadata?.attempts ?? 1;
}
function isPreconditionFailed(e: unknown): boolean {
  const name = (e as { name?: string })?.name;
  return httpStatus(e) === 412 || name === "PreconditionFailed" || httpStatus(e) === 409;
}

/** Yields the chunks re-cut into parts of exactly `size` bytes (the last may be shorter). */
async function* parts(chunks: ChunkSource, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
    let view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (view.length > 0) {
      const take = Math.min(size - pendingBytes, view.length);
      pending.push(view.subarray(0, take));
      pendingBytes += take;
      view = view.subarray(take);
      if (pendingBytes === size) {
        yield pending.length === 1 ? pending[0] : Buffer.concat(pending, size);
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0 || pending.length > 0) yield Buffer.concat(pending, pendingBytes);
}

export class S3Backend implements StorageBackend {
  readonly location: string;
  private readonly client: S3Client;

  constructor(
    readonly where: S3Location,
    config: S3ClientConfig = {},
  ) {
    this.location = `s3://${where.bucket}${where.prefix ? "/" + where.prefix : ""}`;
    // Region and endpoint come from the standard AWS chain (AWS_REGION, AWS_ENDPOINT_URL, profiles).
    this.client = new S3Client({
      retryMode: "adaptive",
      maxAttempts: MAX_ATTEMPTS,
      forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL || process.env.AWS_ENDPOINT_URL_S3),
      ...config,
    });
  }

  /**
   * Every request goes through here so that a missing region or missing
   * credentials become one clear message naming the setting to fix, instead
   * of an SDK stack trace.
   */
  private readonly send = ((command: Parameters<S3Client["send"]>[0]) =>
    this.client.send(command).catch((e: unknown) => {
      throw this.explain(e, command);
    })) as S3Client["send"];

  private explain(e: unknown, command: { constructor: { name: string }; input?: unknown }): unknown {
    const message = (e as Error)?.message ?? String(e);
    if (/Region is missing/i.test(message)) {
      return new DatastoreConfigError(
        `The S3 datastore ${this.location} needs an AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in your AWS profile).`,
      );
    }
    if ((e as Error)?.name === "CredentialsProviderError" || /Could not load credentials/i.test(message)) {
      return new DatastoreConfigError(
        `No AWS credentials for the S3 datastore ${this.location}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an instance or container role is available.`,
      );
    }
    // Answers the callers act on (absent, taken) stay as they are.
    if (isMissing(e) || isPreconditionFailed(e)) return e;
    const op = command.constructor.name.replace(/Command$/, "");
    const key = (command.input as { Key?: string } | undefined)?.Key;
    return this.unavailable(`${op}${key ? ` ${key}` : ""}`, e, attemptsOf(e));
  }

  private unavailable(what: string, e: unknown, attempts: number): DatastoreUnavailableError {
    const status = httpStatus(e);
    const err = e as { name?: string; code?: string; message?: string };
    // Bodiless answers (HEAD) leave the SDK with "Unknown"/"UnknownError": the status says it all then.
    const vague = (x: string | null | undefined) => !x || x === "Error" || /^Unknown(Error)?$/.test(x);
    const why = [status ? `HTTP ${status}${status === 503 ? " (throttled or unavailable)" : ""}` : null, err?.name, err?.code, err?.message ?? String(e)]
      .filter((x, i, all) => !vague(x) && all.indexOf(x) === i)
      .join(": ");
    return Object.assign(
      new DatastoreUnavailableError(
        `the S3 datastore ${this.location} failed ${what} after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${why || "no answer"}; ` +
          "check the network, AWS_ENDPOINT_URL and credentials, then try again",
      ),
      { cause: e },
    );
  }

  private key(key: string): string {
    checkKey(key);
    return this.where.prefix ? `${this.where.prefix}/${key}` : key;
  }

  async exists(): Promise<boolean> {
    try {
      await this.send(new HeadBucketCommand({ Bucket: this.where.bucket }));
    } catch (e) {
      if (isMissing(e)) return false;
      throw e;
    }
    const keys = this.list("")[Symbol.asyncIterator]();
    const first = await keys.next();
    await keys.return?.();
    return !first.done;
  }

  async putIfAbsent(key: string, chunks: ChunkSource, options: PutOptions = {}): Promise<PutResult> {
    const Key = this.key(key);
    const hash = createHash("sha256");
    const iterator = parts(chunks, PART)[Symbol.asyncIterator]();
    const first = await iterator.next();
    const firstPart = first.done ? Buffer.alloc(0) : first.value;
    const second = first.done ? { done: true as const, value: undefined } : await iterator.next();
    if (second.done) {
      hash.update(firstPart);
      await options.tap?.(firstPart);
      this.checkHash(key, hash, options);
      return this.putSmall(Key, firstPart);
    }
    // Large: a multipart upload is invisible until completed, so a crash or a
    // changed value leaves only an incomplete upload, which fsck cleans.
    const upload = await this.send(
      new CreateMultipartUploadCommand({ Bucket: this.where.bucket, Key, Metadata: { "nbscale-writer": `${process.pid}@${HOST}` } }),
    );
    const UploadId = upload.UploadId!;
    const done: { ETag: string; PartNumber: number }[] = [];
    let size = 0;
    try {
      let n = 0;
      for (let part = firstPart, next: IteratorResult<Buffer> = second; ;) {
        hash.update(part);
        await options.tap?.(part);
        size += part.length;
        const r = await this.send(new UploadPartCommand({ Bucket: this.where.bucket, Key, UploadId, PartNumber: ++n, Body: part, ContentLength: part.length }));
        done.push({ ETag: r.ETag!, PartNumber: n });
        if (next.done) break;
        part = next.value;
        next = await iterator.next();
      }
      this.checkHash(key, hash, options);
      await this.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.where.bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: done },
          IfNoneMatch: "*",
        }),
      );
      return { created: true, size };
    } catch (e) {
      await this.send(new AbortMultipartUploadCommand({ Bucket: this.where.bucket, Key, UploadId })).catch(() => undefined);
      if (isPreconditionFailed(e)) return { created: false, size };
      // A completion whose answer was lost: its retry finds the upload gone and the object in place.
      if (attemptsOf(e) > 1 && done.length > 0 && (await this.stat(key).catch(() => null))?.size === size) return { created: true, size };
      throw e;
    }
  }

  private checkHash(key: string, hash: ReturnType<typeof createHash>, options: PutOptions): void {
    if (!options.sha256) return;
    const actual = hash.digest("hex");
    if (actual !== options.sha256) throw new ContentChangedError(key, options.sha256, actual);
  }

  private async putSmall(Key: string, body: Buffer): Promise<PutResult> {
    try {
      await this.send(new PutObjectCommand({ Bucket: this.where.bucket, Key, Body: body, ContentLength: body.length, IfNoneMatch: "*" }));
      return { created: true, size: body.length };
    } catch (e) {
      if (isPreconditionFailed(e)) return { created: false, size: body.length };
      throw e;
    }
  }

  async createExclusive(key: string, data: Uint8Array): Promise<boolean> {
    const Key = this.key(key);
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    try {
      await this.send(new PutObjectCommand({ Bucket: this.where.bucket, Key, Body: body, ContentLength: body.length, IfNoneMatch: "*" }));
      return true;
    } catch (e) {
      if (!isPreconditionFailed(e)) throw e;
      // Taken on a retry: the first attempt may have written it and lost the answer.
      // Records hold ids, hosts and times, so equal bytes mean that attempt was ours.
      if (attemptsOf(e) > 1) return Boolean((await this.get(key))?.equals(body));
      return false;
    }
  }

  async get(key: string): Promise<Buffer | null> {
    const reader = await this.openRead(key);
    if (!reader) return null;
    try {
      const buf = Buffer.allocUnsafe(reader.size);
      await reader.read(buf);
      return buf;
    } finally {
      await reader.close();
    }
  }

  async openRead(key: string): Promise<ObjectReader | null> {
    const Key = this.key(key);
    const open = (range?: { from: number; etag?: string }) =>
      this.send(
        new GetObjectCommand({
          Bucket: this.where.bucket,
          Key,
          ...(range ? { Range: `bytes=${range.from}-`, IfMatch: range.etag } : {}),
        }),
      );
    let r;
    try {
      r = await open();
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
    const size = Number(r.ContentLength ?? 0);
    const etag = r.ETag;
    type Body = AsyncIterable<Uint8Array> & { destroy?: () => void; on?: (event: "error", fn: () => void) => void };
    // A connection cut while nobody iterates (between reads, after close) would otherwise be an
    // unhandled 'error' event that kills the process; the iterator still sees every error it reads into.
    const quiet = (body: unknown): Body => {
      const b = body as Body;
      b.on?.("error", () => undefined);
      return b;
    };
    let stream = quiet(r.Body);
    let it = stream[Symbol.asyncIterator]();
    let received = 0;
    let resumes = 0;
    /** The next piece of the object, or null at its end; a broken body is asked for again from where it stopped. */
    const nextPiece = async (): Promise<Uint8Array | null> => {
      for (;;) {
        try {
          const n = await it.next();
          if (!n.done) {
            received += n.value.byteLength;
            return n.value;
          }
          if (received >= size) return null;
          throw new Error(`the connection closed after ${received} of ${size} bytes`);
        } catch (e) {
          if (e instanceof DatastoreUnavailableError) throw e;
          if (++resumes > BODY_RESUMES) throw this.unavailable(`GetObject ${Key} (reading its body)`, e, resumes);
          stream.destroy?.();
          await sleep(backoffMs(resumes));
          stream = quiet((await open({ from: received, etag })).Body);
          it = stream[Symbol.asyncIterator]();
        }
      }
    };
    let carry: Uint8Array = new Uint8Array(0);
    return {
      size,
      async read(target: Uint8Array): Promise<void> {
        let filled = 0;
        while (filled < target.length) {
          if (carry.length === 0) {
            const next = await nextPiece();
            if (next === null) throw new Error(`${key}: object ended after ${filled} of ${target.length} requested bytes`);
            carry = next;
          }
          const take = Math.min(carry.length, target.length - filled);
          target.set(carry.subarray(0, take), filled);
          carry = carry.subarray(take);
          filled += take;
        }
      },
      async close(): Promise<void> {
        stream.destroy?.();
      },
    };
  }

  async stat(key: string): Promise<ObjectStat | null> {
    try {
      const r = await this.send(new HeadObjectCommand({ Bucket: this.where.bucket, Key: this.key(key) }));
      return { size: Number(r.ContentLength ?? 0), mtimeMs: r.LastModified?.getTime() ?? 0 };
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    const base = this.where.prefix ? `${this.where.prefix}/` : "";
    let ContinuationToken: string | undefined;
    do {
      const r = await this.send(new ListObjectsV2Command({ Bucket: this.where.bucket, Prefix: base + prefix, ContinuationToken }));
      for (const o of r.Contents ?? []) if (o.Key) yield o.Key.slice(base.length);
      ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async remove(key: string): Promise<void> {
    await this.send(new DeleteObjectCommand({ Bucket: this.where.bucket, Key: this.key(key) }));
  }

  async listTemp(): Promise<TempEntry[]> {
    const out: TempEntry[] = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      const r = await this.send(
        new ListMultipartUploadsCommand({
          Bucket: this.where.bucket,
          Prefix: this.where.prefix ? `${this.where.prefix}/` : undefined,
          KeyMarker,
          UploadIdMarker,
        }),
      );
      for (const u of r.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        const activity = await this.uploadActivity(u.Key, u.UploadId, u.Initiated?.getTime() ?? 0);
        if (!activity) continue; // completed or aborted meanwhile
        out.push({
          id: JSON.stringify([u.Key, u.UploadId]),
          size: activity.size,
          mtimeMs: activity.lastMs,
          host: null,
          pid: null,
          writerGone: null,
        });
      }
      KeyMarker = r.IsTruncated ? r.NextKeyMarker : undefined;
      UploadIdMarker = r.IsTruncated ? r.NextUploadIdMarker : undefined;
    } while (KeyMarker);
    return out;
  }

  /** Bytes uploaded so far and the time of the last part (its heartbeat); null when the upload is gone. */
  private async uploadActivity(Key: string, UploadId: string, initiatedMs: number): Promise<{ size: number; lastMs: number } | null> {
    let size = 0;
    let lastMs = initiatedMs;
    let PartNumberMarker: string | undefined;
    try {
      do {
        const r = await this.send(new ListPartsCommand({ Bucket: this.where.bucket, Key, UploadId, PartNumberMarker }));
        for (const p of r.Parts ?? []) {
          size += Number(p.Size ?? 0);
          lastMs = Math.max(lastMs, p.LastModified?.getTime() ?? 0);
        }
        PartNumberMarker = r.IsTruncated ? r.NextPartNumberMarker : undefined;
      } while (PartNumberMarker);
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
    return { size, lastMs };
  }

  async removeTemp(id: string): Promise<void> {
    const [Key, UploadId] = JSON.parse(id) as [string, string];
    await this.send(new AbortMultipartUploadCommand({ Bucket: this.where.bucket, Key, UploadId }));
  }
}

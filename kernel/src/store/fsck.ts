/**
 * `nbscale fsck`: checks every guarantee the datastore makes.
 *
 * Problems (the store is inconsistent): a blob whose bytes don't hash to its
 * name, a committed record referencing a missing blob or version, a version
 * record that disagrees with the execution that produced it, an unreadable
 * record. Leftovers (harmless, listed, removable with `clean`): temp files of
 * interrupted writes and version records of executions that never committed.
 * A leftover is removed only when its writer is known to be gone or it is
 * older than the grace period, so a live writer is never disturbed.
 */
import { StorageBackend } from "./backend";
import { BlobStore, blobKey, blobKeySha } from "./blobs";
import { manifestKey, manifestKeySha } from "./chunk-manifest";
import { parseVersionKey, VersionRecord, versionKey } from "./artifacts";
import { AbandonedMarker, ExecutionRecord, ExecutionStore, executionKey, isAbandonedMarker, isExecutionId, referencedBlobs } from "./executions";
import { thisWriter, writerState } from "./writer";

export const DEFAULT_GRACE_MS = 60 * 60 * 1000;

export interface FsckOptions {
  /** Remove removable leftovers. */
  clean?: boolean;
  /** Leftovers younger than this are kept unless their writer is known gone. */
  graceMs?: number;
  /** Re-hash every blob (default true). */
  verifyBlobs?: boolean;
}

export type ProblemKind = "corrupt-blob" | "corrupt-manifest" | "missing-blob" | "unreadable-record" | "version-mismatch" | "missing-version";

export interface FsckProblem {
  kind: ProblemKind;
  key: string;
  message: string;
}

export interface FsckLeftover {
  /** `manifest`: a chunk manifest whose blob is gone, or a damaged one `clean` removed. */
  kind: "temp" | "uncommitted-version" | "manifest";
  id: string;
  /** For an uncommitted version: the execution that never committed it. */
  execution?: string;
  size: number;
  age_seconds: number;
  writer: "gone" | "alive" | "unknown";
  removable: boolean;
  removed: boolean;
}

export interface FsckResult {
  location: string;
  consistent: boolean;
  /** `abandoned`: executions fenced off before they committed (their markers stay: they keep a late commit out). */
  checked: { blobs: number; blob_bytes: number; executions: number; versions: number; abandoned: number };
  problems: FsckProblem[];
  leftovers: FsckLeftover[];
}

export async function fsck(backend: StorageBackend, options: FsckOptions = {}): Promise<FsckResult> {
  const grace = options.graceMs ?? DEFAULT_GRACE_MS;
  const now = Date.now();
  const blobs = new BlobStore(backend);
  const result: FsckResult = {
    location: backend.location,
    consistent: true,
    checked: { blobs: 0, blob_bytes: 0, executions: 0, versions: 0, abandoned: 0 },
    problems: [],
    leftovers: [],
  };
  const problem = (kind: ProblemKind, key: string, message: string) => result.problems.push({ kind, key, message });

  // Temp files first: anything that appears after this listing is a live write.
  const temps = await backend.listTemp();

  const blobKeys = new Map<string, string>();
  const manifestKeys = new Map<string, string>();
  const versionKeys: string[] = [];
  const executionIds = new Set<string>();
  for await (const key of backend.list("")) {
    const sha = blobKeySha(key);
    const manifestOf = sha ? null : manifestKeySha(key);
    if (sha) blobKeys.set(sha, key);
    else if (manifestOf) manifestKeys.set(manifestOf, key);
    else if (parseVersionKey(key)) versionKeys.push(key);
    else {
      const m = /^executions\/(.+)\.json$/.exec(key);
      if (m && isExecutionId(m[1])) executionIds.add(m[1]);
    }
  }

  const records = new Map<string, ExecutionRecord>();
  const abandoned = new Set<string>();
  for (const id of [...executionIds].sort()) {
    const key = executionKey(id);
    const rec = await readJson<ExecutionRecord | AbandonedMarker>(backend, key);
    if (isAbandonedMarker(rec) && rec.id === id) {
      abandoned.add(id);
      result.checked.abandoned++;
      continue;
    }
    if (!rec || rec.id !== id || isAbandonedMarker(rec)) {
      problem("unreadable-record", key, `execution record ${key} is unreadable or names another id`);
      continue;
    }
    records.set(id, rec);
    result.checked.executions++;
    for (const ref of referencedBlobs(rec)) {
      if (!blobKeys.has(ref.sha256)) {
        problem("missing-blob", key, `execution ${id} (cell ${rec.cell}): ${ref.what} blob sha256:${ref.sha256} is missing`);
      }
    }
  }

  const labels = new Map<string, string[]>();
  const committedVersion = async (rec: VersionRecord): Promise<boolean> => {
    if (rec.execution === null || records.has(rec.execution)) return true;
    if (abandoned.has(rec.execution) || !isExecutionId(rec.execution)) return false;
    // It may have committed (or been abandoned) after the listing.
    const now = await readJson<ExecutionRecord | AbandonedMarker>(backend, executionKey(rec.execution));
    if (isAbandonedMarker(now)) abandoned.add(rec.execution);
    return now !== null && !isAbandonedMarker(now);
  };
  const versions = new Map<string, VersionRecord>();
  for (const key of versionKeys.sort()) {
    const parsed = parseVersionKey(key);
    const rec = await readJson<VersionRecord>(backend, key);
    if (!parsed || !rec || rec.name !== parsed.name || rec.version !== parsed.version) {
      problem("unreadable-record", key, `version record ${key} is unreadable or names another version`);
      continue;
    }
    const label = `${rec.name}@${rec.version}`;
    if (!(await committedVersion(rec))) {
      const st = await backend.stat(key);
      const age = st ? now - st.mtimeMs : 0;
      // An abandoned execution can never commit, whoever wrote its records.
      const writer = rec.execution !== null && abandoned.has(rec.execution) ? "gone" : writerState(rec.writer);
      result.leftovers.push({
        kind: "uncommitted-version",
        id: key,
        ...(rec.execution !== null ? { execution: rec.execution } : {}),
        size: st?.size ?? 0,
        age_seconds: Math.round(age / 1000),
        writer,
        removable: writer === "gone" || (writer === "unknown" && age > grace),
        removed: false,
      });
      continue;
    }
    versions.set(key, rec);
    result.checked.versions++;
    labels.set(rec.sha256, [...(labels.get(rec.sha256) ?? []), label]);
    if (!blobKeys.has(rec.sha256)) problem("missing-blob", key, `${label}: blob sha256:${rec.sha256} is missing`);
    const producer = rec.execution ? records.get(rec.execution) : undefined;
    const out = producer?.outputs[rec.name];
    if (producer && (!out || out.version !== rec.version || out.sha256 !== rec.sha256)) {
      problem("version-mismatch", key, `${label} says execution ${rec.execution} produced it, but that execution's record disagrees`);
    }
  }

  for (const rec of records.values()) {
    for (const [kind, refs] of [
      ["output", rec.outputs],
      ["input", rec.inputs],
    ] as const) {
      for (const [name, ref] of Object.entries(refs)) {
        const key = versionKey(name, ref.version);
        const v = versions.get(key);
        if (!v) problem("missing-version", executionKey(rec.id), `execution ${rec.id}: ${kind} ${name}@${ref.version} has no committed version record`);
        else if (v.sha256 !== ref.sha256) {
          problem(
            "version-mismatch",
            executionKey(rec.id),
            `execution ${rec.id}: ${kind} ${name}@${ref.version} has sha256 ${ref.sha256.slice(0, 12)}…, the version record ${v.sha256.slice(0, 12)}…`,
          );
        }
      }
    }
  }

  if (options.verifyBlobs !== false) {
    for (const [sha, key] of [...blobKeys].sort()) {
      const st = await backend.stat(key);
      result.checked.blobs++;
      result.checked.blob_bytes += st?.size ?? 0;
      const found = await blobs.check(sha);
      if (found.blob) {
        const who = labels.get(sha);
        problem("corrupt-blob", key, `blob sha256:${sha} ${found.blob}` + (who ? ` — it holds ${who.join(", ")}` : ""));
      } else if (found.manifest) {
        const mkey = manifestKey(sha);
        if (options.clean) {
          // Derived data: without it, reads verify the whole blob instead.
          await backend.remove(mkey);
          result.leftovers.push({ kind: "manifest", id: mkey, size: 0, age_seconds: 0, writer: "unknown", removable: true, removed: true });
        } else {
          problem(
            "corrupt-manifest",
            mkey,
            `chunk manifest of blob sha256:${sha} ${found.manifest.detail}; ` +
              (found.manifest.refusesReads ? "reads of the blob are refused" : "reads ignore it and verify the whole blob") +
              ` until \`nbscale fsck --clean\` removes the manifest (the blob itself is intact)`,
          );
        }
      }
    }
  } else {
    result.checked.blobs = blobKeys.size;
  }

  for (const [sha, key] of manifestKeys) {
    if (blobKeys.has(sha)) continue;
    // Written after its blob: a blob that is gone (or was never published) leaves it behind.
    const st = await backend.stat(key);
    const age = st ? now - st.mtimeMs : 0;
    result.leftovers.push({
      kind: "manifest",
      id: key,
      size: st?.size ?? 0,
      age_seconds: Math.round(age / 1000),
      writer: "unknown",
      removable: age > grace,
      removed: false,
    });
  }

  for (const t of temps) {
    const age = now - t.mtimeMs;
    result.leftovers.push({
      kind: "temp",
      id: t.id,
      size: t.size,
      age_seconds: Math.round(age / 1000),
      writer: t.writerGone === true ? "gone" : t.writerGone === false ? "alive" : "unknown",
      removable: t.writerGone === true || (t.writerGone !== false && age > grace),
      removed: false,
    });
  }

  if (options.clean) {
    const executions = new ExecutionStore(backend, blobs);
    const me = thisWriter();
    const fates = new Map<string, "abandoned" | "committed">();
    for (const l of result.leftovers) {
      if (!l.removable || l.removed) continue;
      if (l.kind === "uncommitted-version" && l.execution !== undefined) {
        // Fenced first: from here on the execution can't commit, so nothing will name this record.
        let fate = abandoned.has(l.execution) ? "abandoned" : fates.get(l.execution);
        if (fate === undefined) {
          fate = await executions.abandon(l.execution, { by: "nbscale fsck --clean", host: me.host, pid: me.pid });
          fates.set(l.execution, fate);
        }
        if (fate === "committed") {
          // It committed after all, after this record was checked: the record is no leftover.
          l.removable = false;
          continue;
        }
        await backend.remove(l.id);
      } else if (l.kind === "temp") await backend.removeTemp(l.id);
      else if (l.kind === "manifest" && (await blobPublished(backend, l.id))) {
        // Its blob was published after the listing (manifests follow their blob): not an orphan.
        l.removable = false;
        continue;
      } else await backend.remove(l.id);
      l.removed = true;
    }
    result.checked.abandoned += [...fates.values()].filter((f) => f === "abandoned").length;
  }

  result.consistent = result.problems.length === 0;
  return result;
}

async function blobPublished(backend: StorageBackend, manifest: string): Promise<boolean> {
  const sha = manifestKeySha(manifest);
  return sha !== null && (await backend.stat(blobKey(sha))) !== null;
}

async function readJson<T>(backend: StorageBackend, key: string): Promise<T | null> {
  try {
    const buf = await backend.get(key);
    return buf ? (JSON.parse(buf.toString("utf8")) as T) : null;
  } catch (e) {
    if (e instanceof SyntaxError) return null;
    throw e;
  }
}

/**
 * Notebook identity across renames.
 *
 * Executions and versions are recorded under the notebook's path. When a
 * user renames or moves a notebook in JupyterLab, its history must follow
 * it — otherwise `%history`, the history sidebar, `%restore NAME` and the
 * "unchanged value, same version" rule would all start from zero under the
 * new name. A rename is therefore recorded once, as its own small immutable
 * object (`notebooks/renames/*.json`), and every query by notebook asks for
 * the notebook's *lineage*: its path, plus each earlier path it was renamed
 * from, limited to what was recorded there before the rename (a new notebook
 * later created under the old name is a different notebook).
 */
import { randomBytes } from "node:crypto";
import type { StorageBackend } from "./backend";

const PREFIX = "notebooks/renames/";

export interface RenameRecord {
  format: 1;
  from: string;
  to: string;
  /** ISO time of the rename: records under `from` after it belong to another notebook. */
  at: string;
}

/** One path a notebook had, and until when (ISO; null = still has it). */
export interface NotebookAlias {
  path: string;
  before: string | null;
}

/** A notebook path, or a whole lineage as `NotebookRenames.lineage` returns it. */
export type NotebookFilter = string | readonly NotebookAlias[];

/** Whether something recorded by `notebook` at `when` (ISO) belongs to `filter`. */
export function inNotebook(filter: NotebookFilter, notebook: string | null, when: string): boolean {
  if (typeof filter === "string") return notebook === filter;
  return filter.some((a) => a.path === notebook && (a.before === null || when < a.before));
}

/** The notebook's current path, for messages. */
export function currentPath(filter: NotebookFilter): string {
  return typeof filter === "string" ? filter : (filter[0]?.path ?? "");
}

export class NotebookRenames {
  constructor(private readonly backend: StorageBackend) {}

  /** Records that the notebook at `from` is now at `to`. */
  async record(from: string, to: string, at: Date = new Date()): Promise<RenameRecord> {
    const rec: RenameRecord = { format: 1, from, to, at: at.toISOString() };
    // Time first so keys sort by time; the random tail keeps two kernels from colliding.
    const key = `${PREFIX}${rec.at.replace(/[:.]/g, "-")}-${randomBytes(4).toString("hex")}.json`;
    await this.backend.createExclusive(key, Buffer.from(JSON.stringify(rec) + "\n"));
    return rec;
  }

  async all(): Promise<RenameRecord[]> {
    const out: RenameRecord[] = [];
    for await (const key of this.backend.list(PREFIX)) {
      const body = await this.backend.get(key);
      if (!body) continue;
      try {
        const r = JSON.parse(body.toString("utf8")) as Partial<RenameRecord>;
        if (typeof r.from === "string" && typeof r.to === "string" && typeof r.at === "string") out.push(r as RenameRecord);
      } catch {
        // A damaged rename record only loses that rename's history link; fsck reports damage.
      }
    }
    return out;
  }

  /**
   * `path` and every path it was renamed from, each with the time it stopped
   * being this notebook's name. Follows chains (a → b → c) and ignores cycles.
   */
  async lineage(path: string): Promise<NotebookAlias[]> {
    const renames = await this.all();
    const out: NotebookAlias[] = [{ path, before: null }];
    // Walk back from the current name: a rename into a known alias (while it was still that alias) adds its source.
    const queue: NotebookAlias[] = [out[0]];
    const seen = new Set<string>([path]);
    while (queue.length > 0) {
      const alias = queue.shift()!;
      for (const r of renames) {
        if (r.to !== alias.path || (alias.before !== null && r.at >= alias.before) || seen.has(r.from)) continue;
        seen.add(r.from);
        const prev = { path: r.from, before: r.at };
        out.push(prev);
        queue.push(prev);
      }
    }
    return out;
  }
}

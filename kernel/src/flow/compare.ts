/**
 * `nbscale show RUN --compare NOTEBOOK.ipynb`: does the flow reproduce the
 * notebook? For each name the run produced (the last step that returned it
 * wins, as the last cell does in the notebook), the run's SHA-256 against
 * the notebook's latest recorded version of that name.
 *
 * Which executions belong to the notebook: those recorded with its path, or
 * with its folder (headless kernels, nbclient/papermill, don't know the
 * notebook's file name and record the folder instead; see
 * session/recording.ts).
 */
import { dirname, resolve } from "node:path";
import type { Datastore } from "../store";
import type { RunView } from "../store/runs";

export interface ComparedArtifact {
  name: string;
  step: string;
  run_sha256: string;
  notebook_sha256: string | null;
  notebook_version: number | null;
  notebook_cell: string | null;
  result: "match" | "differ" | "not-in-notebook";
}

export interface Comparison {
  run: string;
  notebook: string;
  artifacts: ComparedArtifact[];
  /** Names the notebook recorded that no step of the run returned. */
  only_in_notebook: string[];
  matched: number;
  differ: number;
}

export async function compareRun(ds: Datastore, run: RunView, notebookFile: string, cwd: string): Promise<Comparison> {
  const nb = resolve(cwd, notebookFile);
  const owners = new Set([nb, dirname(nb)]);
  const latest = new Map<string, { sha256: string; version: number; cell: string }>();
  for (const rec of await ds.history()) {
    if (rec.status !== "ok" || rec.notebook === null || !owners.has(rec.notebook)) continue;
    for (const [name, out] of Object.entries(rec.outputs)) {
      if (!latest.has(name)) latest.set(name, { sha256: out.sha256, version: out.version, cell: rec.cell });
    }
  }
  const produced = new Map<string, { step: string; sha256: string }>();
  for (const { name } of run.start.steps) {
    const rec = run.steps[name];
    if (!rec || rec.status !== "succeeded") continue;
    for (const [artifact, sha256] of Object.entries(rec.artifacts)) produced.set(artifact, { step: name, sha256 });
  }
  const artifacts: ComparedArtifact[] = [...produced.entries()].map(([name, p]) => {
    const n = latest.get(name);
    return {
      name,
      step: p.step,
      run_sha256: p.sha256,
      notebook_sha256: n?.sha256 ?? null,
      notebook_version: n?.version ?? null,
      notebook_cell: n?.cell ?? null,
      result: !n ? "not-in-notebook" : n.sha256 === p.sha256 ? "match" : "differ",
    };
  });
  return {
    run: run.id,
    notebook: nb,
    artifacts,
    only_in_notebook: [...latest.keys()].filter((n) => !produced.has(n)).sort(),
    matched: artifacts.filter((a) => a.result === "match").length,
    differ: artifacts.filter((a) => a.result === "differ").length,
  };
}

export function renderComparison(c: Comparison): string {
  const lines = [`run ${c.run} against ${c.notebook}`];
  const width = Math.max(4, ...c.artifacts.map((a) => a.name.length));
  for (const a of c.artifacts) {
    const what =
      a.result === "match"
        ? `match   sha256:${a.run_sha256.slice(0, 16)}`
        : a.result === "differ"
          ? `DIFFER  run sha256:${a.run_sha256.slice(0, 16)}  notebook sha256:${a.notebook_sha256!.slice(0, 16)} (@${a.notebook_version}, cell ${a.notebook_cell})`
          : `not recorded by the notebook`;
    lines.push(`  ${a.name.padEnd(width)}  (step ${a.step})  ${what}`);
  }
  if (c.only_in_notebook.length > 0) lines.push(`  recorded by the notebook only: ${c.only_in_notebook.join(", ")}`);
  lines.push(`${c.matched} match, ${c.differ} differ, ${c.artifacts.length - c.matched - c.differ} not in the notebook`);
  return lines.join("\n") + "\n";
}

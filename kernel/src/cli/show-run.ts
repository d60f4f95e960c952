/** `nbscale show RUN_ID [--compare NOTEBOOK]`: one flow run in full. */
import type { CliIO } from "./command";
import type { Datastore } from "../store";
import { writeJson, duration, shortTime } from "./support";
import { RunStore } from "../store/runs";
import { compareRun, renderComparison } from "../flow/compare";

export async function showRun(ds: Datastore, id: string, options: { json: boolean; compare?: string }, io: CliIO): Promise<number> {
  const run = await new RunStore(ds.backend).get(id);
  if (options.compare !== undefined) {
    const c = await compareRun(ds, run, options.compare, io.cwd);
    if (options.json) writeJson(io, c);
    else io.stdout.write(renderComparison(c));
    return 0;
  }
  if (options.json) {
    writeJson(io, { run: run.id, status: run.status, start: run.start, end: run.end, steps: run.steps });
    return 0;
  }
  const lines = [
    `run       ${run.id}`,
    `status    ${run.status}`,
    `flow      ${run.start.flow.name} (${run.start.flow.path}, sha256:${run.start.flow.source_sha256.slice(0, 16)})`,
    `started   ${shortTime(run.start.started)}${run.end ? `, took ${duration(run.start.started, run.end.finished)}` : ""}`,
  ];
  if (run.start.resumed_from) lines.push(`resumes   ${run.start.resumed_from}`);
  lines.push("steps");
  for (const { name, needs } of run.start.steps) {
    const s = run.steps[name];
    const state = !s ? "not finished" : s.status === "succeeded" && !s.executed ? `reused from ${s.reused_from}` : s.status;
    lines.push(
      `  ${name}  ${state}${needs.length ? `  (needs ${needs.join(", ")})` : ""}${s?.started && s.finished && s.executed ? `  ${duration(s.started, s.finished)}` : ""}`,
    );
    if (s?.error) lines.push(`    error: ${s.error.message}${s.error.advice ? `\n    advice: ${s.error.advice}` : ""}`);
    for (const [n, sha] of Object.entries(s?.artifacts ?? {})) {
      lines.push(`    ${n}  sha256:${sha.slice(0, 16)}${s?.versions[n] ? `  (${n}@${s.versions[n]})` : ""}`);
    }
    if (s?.execution) lines.push(`    execution ${s.execution}   log: nbscale logs ${run.id}/${name}`);
  }
  io.stdout.write(lines.join("\n") + "\n");
  return 0;
}

/**
 * What `nbscale run` and `nbscale resume` share: the `--json` shape of
 * PRODUCT.md, and the failure report (step, error, log command, advice).
 */
import type { CliIO } from "./command";
import type { RunResult } from "../flow/runner";

export function jsonResult(r: RunResult): {
  run: string;
  status: string;
  steps: Record<string, { status: string; executed: boolean; artifacts: Record<string, string> }>;
} {
  return {
    run: r.run,
    status: r.status,
    steps: Object.fromEntries(Object.entries(r.steps).map(([name, s]) => [name, { status: s.status, executed: s.executed, artifacts: s.artifacts }])),
  };
}

export function reportFailures(command: string, r: RunResult, io: CliIO): void {
  if (r.status === "succeeded") return;
  for (const f of r.failures) {
    const lines = [`nbscale ${command}: step ${f.step} failed: ${f.error.message}`];
    if (f.error.advice) lines.push(`  memory: ${f.error.advice}`);
    lines.push(`  log:    nbscale logs ${r.run}/${f.step}`);
    io.stderr.write(lines.join("\n") + "\n");
  }
  if (r.failures.length > 0) {
    io.stderr.write(`  resume: nbscale resume ${r.run}   (after fixing ${r.failures.map((f) => f.step).join(", ")} in ${r.flowPath})\n`);
  }
}

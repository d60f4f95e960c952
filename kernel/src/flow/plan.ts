/**
 * Resume decisions, kept pure so they are unit-tested apart from processes.
 */
import type { StepRecord } from "../store/runs";

export interface Node {
  name: string;
  needs: string[];
}

/** `from` and every step that reads (directly or not) from one of them. */
export function downstreamOf(nodes: readonly Node[], from: readonly string[]): Set<string> {
  const out = new Set<string>(from);
  let grew = true;
  while (grew) {
    grew = false;
    for (const n of nodes) {
      if (!out.has(n.name) && n.needs.some((d) => out.has(d))) {
        out.add(n.name);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * An earlier result stands in for running the step when it succeeded with
 * the same code and exactly the same inputs (same names, same hashes).
 */
export function canReuse(before: StepRecord, codeSha256: string, inputs: Record<string, { sha256: string }>): boolean {
  if (before.status !== "succeeded" || before.code_sha256 !== codeSha256) return false;
  const a = Object.keys(before.inputs).sort();
  const b = Object.keys(inputs).sort();
  if (a.length !== b.length || a.some((k, i) => k !== b[i])) return false;
  return a.every((k) => before.inputs[k].sha256 === inputs[k].sha256);
}

/**
 * What `resume` re-runs when no `--from` is given: the steps that failed or
 * never finished (skipped, or missing after an interrupted run).
 */
export function stepsToResume(order: readonly string[], steps: Record<string, Pick<StepRecord, "status">>): string[] {
  return order.filter((name) => steps[name]?.status !== "succeeded");
}

/**
 * A step's failure as a flow run records and prints it: the message every
 * surface shows, the facts after it, and the fix in the flow file's terms
 * (a cell says the same fix in `%%step` terms: step/failures.ts).
 */
import type { Fix, StepFailure } from "../backends/step-failure";
import type { StepError } from "../store/runs";

export function stepErrorOf(step: string, f: StepFailure, outputFile?: string): StepError {
  const where = outputFile ? ` [job output: ${outputFile}]` : "";
  const details = f.details.map((l) => l.trim()).filter(Boolean);
  const message = `${f.message}${flowFix(f.fix)}${details.length ? ` ${details.join(" ")}` : ""}${where}`;
  const kind = f.kind === "out-of-memory" ? "oom" : f.kind === "timeout" ? "timeout" : "error";
  const advice =
    f.fix?.kind === "memory"
      ? `give it more memory: memory: "${f.fix.size}" in step("${step}", { ... }) of the flow file (--memory ${f.fix.size} on the cell's %%step line), then resume the run`
      : undefined;
  return { kind, name: f.name, message, ...(advice ? { advice } : {}) };
}

function flowFix(fix: Fix | undefined): string {
  switch (fix?.kind) {
    case "more-time":
      return '; give it more time with timeout: "2h" on the step';
    case "run-again":
      return "; resume the run";
    default:
      // Memory: said as `advice`, on a line of its own.
      return "";
  }
}

/** What a failed step says to the user: the cause, in numbers, and the fix. */
import type { Diagnostic } from "../session/engine/compiler";
import { excerpt, heading, interruptedError, type CellError } from "../session/errors";
import type { Fix, StepFailure } from "../backends/step-failure";

export function cellError(ename: string, evalue: string, extra: string[] = []): CellError {
  return { ename, evalue, traceback: [heading(ename, evalue), ...extra] };
}

/** A type error in the step body, with the cell's own line numbers. */
export function compileError(body: string, diagnostics: Diagnostic[], lineOffset: number): CellError {
  const where = (d: Diagnostic) => `${d.start.line + 1 + lineOffset}:${d.start.character + 1}`;
  const traceback: string[] = [];
  for (const d of diagnostics) {
    traceback.push(heading(`error TS${d.code}`, `${d.fileName ? `${d.fileName} ` : ""}${where(d)} - ${d.messageText}`));
    if (!d.fileName) traceback.push(...excerpt(body, d.start.line, d.start.character, lineOffset));
  }
  const first = diagnostics[0];
  const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : "";
  return { ename: "TSError", evalue: `${where(first)} - ${first.messageText}${more}`, traceback };
}

/** A failure as the cell shows it: the message with the fix in `%%step` terms, then its facts. */
export function failureError(f: StepFailure): CellError {
  if (f.kind === "interrupted") return interruptedError();
  const evalue = `${f.message}${cellFix(f.fix)}`;
  const intact = f.kind === "not-started" || f.kind === "exception" ? [] : ["    (the kernel and its variables are intact)"];
  return { ename: f.name, evalue, traceback: [heading(f.name, evalue), ...f.details.map((d) => `    ${d}`), ...intact] };
}

function cellFix(fix: Fix | undefined): string {
  switch (fix?.kind) {
    case "memory":
      return `; re-run with \`--memory ${fix.size}\``;
    case "more-time":
      return "; give it more time with --timeout (e.g. --timeout 2h)";
    case "run-again":
      return "; run the cell again";
    default:
      return "";
  }
}

/** `(attempt 2 of 3)` under a failure, when --retries allowed more than one. */
export function withAttempts(e: CellError, attempt: number, attempts: number): CellError {
  if (attempts <= 1) return e;
  return { ...e, traceback: [...e.traceback, `    (attempt ${attempt} of ${attempts})`] };
}

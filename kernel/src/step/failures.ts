/** What a failed step says to the user: the cause, in numbers, and the fix. */
import type { Diagnostic } from "../session/engine/compiler";
import { excerpt, heading, interruptedError, type CellError } from "../session/errors";
import { formatDuration } from "../magics";
import type { TaskResult } from "../backends/local-pool";
import { heapLimitMiB, humanBytes, suggestMemory } from "../backends/memory";

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

/** V8's default heap limit on 64-bit Linux, for messages about steps without `--memory`. */
const DEFAULT_HEAP = 4 * 2 ** 30;

export function deathError(step: string, r: Extract<TaskResult, { status: "died" }>, memory: number | undefined, timeoutMs?: number): CellError {
  switch (r.death) {
    case "oom":
    case "oom-heap": {
      // The watchdog samples; a heap-limit crash happens at the limit whatever was sampled.
      const floor = r.death === "oom-heap" ? (memory !== undefined ? heapLimitMiB(memory) * 2 ** 20 : DEFAULT_HEAP) : 0;
      const used = Math.max(r.peakRss, floor);
      const how = r.death === "oom" ? "the memory watchdog stopped its worker" : "its JavaScript heap hit the limit";
      const msg =
        memory !== undefined
          ? `step \`${step}\` ran out of memory: it used about ${humanBytes(used)} of the ${humanBytes(memory)} it asked for; re-run with \`--memory ${suggestMemory(memory, used)}\``
          : `step \`${step}\` ran out of memory: it used about ${humanBytes(used)} with no --memory given (V8's default heap is about 4 GiB); re-run with \`--memory ${suggestMemory(DEFAULT_HEAP, used)}\``;
      return cellError("StepOutOfMemory", msg, [`    (${how}; the kernel and its variables are intact)`]);
    }
    case "timeout":
      return cellError("StepTimeout", `step \`${step}\` did not finish within its --timeout ${formatDuration(timeoutMs ?? 0)}; its worker was stopped`);
    case "interrupted":
      return interruptedError();
    case "killed": {
      const how = r.signal ? `was killed by ${r.signal}` : `exited with code ${r.code}`;
      const extra = r.signal === "SIGKILL" ? " (from outside nbscale: e.g. `kill -9` or the OS)" : "";
      const tail = r.stderr.trim().split("\n").slice(-5);
      return cellError(
        "WorkerDied",
        `step \`${step}\`: its worker (pid ${r.worker.pid}) ${how}${extra} while the step ran; the next step runs on a fresh worker`,
        r.signal ? [] : tail.map((l) => `    ${l}`),
      );
    }
  }
}

/** A few words for a retry notice. */
export function shortReason(r: TaskResult, timeoutMs?: number): string {
  if (r.status !== "died") return r.status;
  if (r.death === "timeout") return `timed out after ${formatDuration(timeoutMs ?? 0)}`;
  return r.signal ? `worker ${r.worker.pid} killed by ${r.signal}` : `worker ${r.worker.pid} exited with code ${r.code}`;
}

/** Deaths a retry can help with; an out-of-memory or interrupted step would only fail again or is not wanted. */
export function retryable(r: TaskResult): boolean {
  return r.status === "died" && (r.death === "killed" || r.death === "timeout");
}

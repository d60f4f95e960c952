/**
 * The one retry policy, for a cell's step, each item of a foreach, a Slurm
 * or Batch job and a flow step alike, decided from the failure's facts:
 *
 * - a death under the step (worker killed, job lost, node failure,
 *   preemption) or a timeout: run it again, as it was;
 * - out of memory: only when the step asked for retries, and then with the
 *   memory the failure suggests (the same request would only fail again);
 * - an exception, an interrupt, a cancel from outside, a refusal: never (the
 *   step's own result, or someone meant it).
 */
import type { StepFailure } from "../backends/step-failure";
import { parseSize } from "../magics/units";

export type RetryDecision =
  | { retry: false }
  /** `memory`: bytes the next attempt asks for, when it changes. */
  | { retry: true; memory?: number; notice: string };

export interface AttemptState {
  /** 1-based: the attempt that just failed. */
  attempt: number;
  /** 1 + --retries. */
  attempts: number;
  /** Bytes the failed attempt asked for. */
  memory?: number;
  /** Already stopping (an interrupt came): nothing more starts. */
  stopping?: boolean;
  /** The most the target can give (this machine's memory for local workers). */
  maxMemory?: number;
}

export function retryDecision(f: StepFailure, s: AttemptState): RetryDecision {
  if (s.attempt >= s.attempts || s.stopping) return { retry: false };
  switch (f.kind) {
    case "worker-died":
    case "node-failed":
    case "preempted":
    case "timeout":
      return { retry: true, notice: "retrying" };
    case "out-of-memory": {
      const size = f.fix?.kind === "memory" ? f.fix.size : undefined;
      const bytes = size !== undefined ? parseSize(size) : undefined;
      if (bytes === undefined || (s.memory !== undefined && bytes <= s.memory) || (s.maxMemory !== undefined && bytes > s.maxMemory)) return { retry: false };
      return { retry: true, memory: bytes, notice: `retrying with --memory ${size}` };
    }
    default:
      return { retry: false };
  }
}

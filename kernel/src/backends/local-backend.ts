/**
 * `--on local` (the default) as a StepBackend: the kernel's pool of warm
 * workers on this machine (local-pool.ts). It refuses what this machine can
 * never give before anything starts; a remote target's own checks say what
 * its nodes or queues can give.
 */
import * as os from "node:os";
import { formatSize } from "../magics/units";
import type { LocalPool } from "./local-pool";
import { humanBytes } from "./memory";
import { notStarted, type StepFailure } from "./step-failure";
import type { StepAsk, StepBackend, StepRequest, StepResult } from "./step-backend";

const ELSEWHERE = "run it where there is more with `--on batch` or `--on slurm`";

/** What this machine can never give a step (`--on local` and `--on kernel` alike). */
export function machineRefusal(req: StepAsk, totalMemory: number): StepFailure | null {
  if (req.memory !== undefined && req.memory > totalMemory) {
    return notStarted(
      "StepResourceError",
      `step \`${req.step}\` asks for --memory ${formatSize(req.memory)} but this machine has ${humanBytes(totalMemory)} of memory in all; ask for less, or ${ELSEWHERE}`,
    );
  }
  const cores = os.availableParallelism();
  if (req.cpu !== undefined && req.cpu > cores) {
    return notStarted(
      "StepResourceError",
      `step \`${req.step}\` asks for --cpu ${req.cpu} but this machine has ${cores} CPU cores; ask for at most ${cores}, or ${ELSEWHERE}`,
    );
  }
  if (req.gpu !== undefined && req.gpu > 0) {
    return notStarted("StepResourceError", `step \`${req.step}\` asks for --gpu ${req.gpu}, but local workers have no GPUs; ${ELSEWHERE}`);
  }
  return null;
}

export class LocalBackend implements StepBackend {
  readonly target = "local";

  /** `pool`: the kernel's, started when first needed. */
  constructor(private readonly pool: () => LocalPool) {}

  check(ask: StepAsk): StepFailure | null {
    return machineRefusal(ask, this.maxMemory);
  }

  get maxMemory(): number {
    return this.pool().totalMemory;
  }

  async run(req: StepRequest): Promise<StepResult> {
    return await this.pool().run({
      step: req.step,
      attempt: req.attempt,
      memory: req.memory,
      env: req.env,
      timeoutMs: req.timeoutMs,
      program: req.program,
      inputs: req.inputs,
      lazy: req.lazy,
      onEvent: req.onEvent,
    });
  }

  stop(): void {
    this.pool().cancelRunning();
  }
}

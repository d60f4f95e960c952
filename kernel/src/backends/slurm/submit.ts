/**
 * One way to submit for every Slurm path (a cell's step, a cell's array, a
 * flow step, a flow array): sbatch's refusal becomes the failure that
 * explains it — what sbatch said, and what the cluster's nodes can give.
 */
import type { StepFailure } from "../step-failure";
import type { SubmittedTask } from "../remote/kernel-side";
import { showNodes } from "./commands";
import { submitFailure } from "./failures";
import { SbatchError, type SlurmJob, type SlurmLauncher } from "./launcher";

export interface SubmitAsk {
  step: string;
  memory?: number;
  cpu?: number;
  gpu?: number;
  partition?: string;
}

/** Submits `task`; a refusal is thrown as `refused(explanation)` (each caller's own error type). */
export async function submitOrExplain(
  launcher: SlurmLauncher,
  task: SubmittedTask,
  ask: SubmitAsk,
  refused: (failure: StepFailure) => Error,
): Promise<SlurmJob> {
  try {
    return await launcher.submit(task);
  } catch (e) {
    if (!(e instanceof SbatchError)) throw e;
    const nodes = await showNodes().catch(() => null);
    throw refused(submitFailure(ask.step, e.stderr, { memory: ask.memory, cpu: ask.cpu, gpu: ask.gpu, partition: ask.partition }, nodes));
  }
}

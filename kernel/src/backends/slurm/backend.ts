/**
 * `--on slurm` as a StepBackend: one Slurm job per attempt (run.ts); the
 * interrupt scancels it. No `check`: what the cluster can give is sbatch's to
 * say when the job is submitted (submit.ts explains a refusal).
 */
import type { StepBackend, StepRequest, StepResult } from "../step-backend";
import { runSlurmStep } from "./run";

export class SlurmBackend implements StepBackend {
  readonly target = "slurm";
  private abort: AbortController | null = null;

  /** `cwd`: the notebook's folder (the kernel's datastore is found from it). */
  constructor(private readonly cwd: string) {}

  async run(req: StepRequest): Promise<StepResult> {
    this.abort = new AbortController();
    try {
      const r = await runSlurmStep({ ...req, cwd: this.cwd, signal: this.abort.signal });
      return { ...r.result, host: r.host };
    } finally {
      this.abort = null;
    }
  }

  stop(): void {
    this.abort?.abort();
  }
}

/**
 * Flow steps on Slurm: one step (or foreach item) = one `sbatch` job with the
 * step's memory, cpu, gpu, timeout and partition, running the worker on the
 * run's datastore as the nodes see it (NBSCALE_SLURM_DATASTORE, else the same
 * path: a shared filesystem, or S3). Settings and refusals are the kernel's
 * (backends/slurm/settings.ts); endings are explained by the same code as a
 * `%%step --on slurm` cell (backends/slurm/failures.ts).
 */
import { run } from "../backends/slurm/commands";
import { ArrayStates, ElementLauncher } from "../backends/slurm/array";
import { taskKey } from "../worker/remote/protocol";
import { backendFor } from "../store/backends";
import type { StorageBackend } from "../store/backend";
import { jobEnding, SlurmLauncher, type SlurmJob, type SlurmStatus } from "../backends/slurm/launcher";
import { submitOrExplain } from "../backends/slurm/submit";
import { packageDir } from "../backends/slurm/run";
import { SlurmConfigError, slurmSettings, type SlurmSettings } from "../backends/slurm/settings";
import type { SubmittedTask } from "../backends/remote/kernel-side";
import type { DatastoreLocation } from "../store/location";
import type { StepFailure } from "../backends/step-failure";
import type { StepDef } from "./api";
import { RemoteSetupError, SubmitRefused, type JobFacts, type RemoteJob, type RemoteTarget, type StepResources } from "./remote-launcher";

export class SlurmTarget implements RemoteTarget {
  readonly name = "slurm";
  private readonly byPartition = new Map<string, SlurmSettings>();
  private readonly backend: StorageBackend;

  private constructor(datastore: DatastoreLocation) {
    this.backend = backendFor(datastore);
  }

  /**
   * Refuses before anything is submitted: a partition or setting that can't
   * be right, or no Slurm client commands on PATH.
   */
  static async preflight(steps: readonly StepDef[], datastore: DatastoreLocation, cwd: string): Promise<SlurmTarget> {
    const settingsFor = (partition: string | undefined, who: string): SlurmSettings => {
      try {
        return slurmSettings({ partition, env: process.env, datastore, cwd, packageDir: packageDir() });
      } catch (e) {
        if (e instanceof SlurmConfigError) {
          throw new RemoteSetupError(`${who} can't be sent to Slurm: ${e.message} (setting: ${e.setting}; nothing was submitted)`);
        }
        throw e;
      }
    };
    // The settings every step shares (NBSCALE_SLURM_*) are checked once, blaming no step in particular.
    settingsFor(undefined, `steps ${steps.map((s) => s.name).join(", ")}`);
    const target = new SlurmTarget(datastore);
    for (const s of steps) target.byPartition.set(s.settings.partition ?? "", settingsFor(s.settings.partition, `step ${s.name}`));
    try {
      const r = await run("sbatch", ["--version"], 10_000);
      if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
    } catch (e) {
      throw new RemoteSetupError(
        `steps ${steps.map((s) => s.name).join(", ")} ask for Slurm, but ${(e as Error).message.replace(/the kernel's PATH/, "PATH")}; ` +
          "run where Slurm's client commands work (a login node), or run them here with `--on local`",
      );
    }
    return target;
  }

  async submit(task: SubmittedTask, r: StepResources): Promise<RemoteJob<SlurmJob, SlurmStatus>> {
    const settings = this.byPartition.get(r.settings.partition ?? "")!;
    const launcher = new SlurmLauncher(settings, { memory: r.memory, cpu: r.cpu, gpu: r.gpu, timeoutMs: r.timeoutMs });
    const ask = { step: task.step, memory: r.memory, cpu: r.cpu, gpu: r.gpu, partition: settings.partition };
    const job = await submitOrExplain(launcher, task, ask, (f) => new SubmitRefused(f));
    return {
      launcher,
      job,
      label: `Slurm job ${job.id}`,
      ended: async (status, facts) => {
        return withOutputFile(jobEnding(task.step, job.id, job.outputFile, status.info, r, facts), job.outputFile);
      },
    };
  }

  /** One `sbatch --array=0-(n-1)[%parallel]`; each element watched through one shared `scontrol` poll (backends/slurm/array.ts). */
  async submitArray(task: SubmittedTask, n: number, r: StepResources): Promise<RemoteJob<number, SlurmStatus>[]> {
    const settings = this.byPartition.get(r.settings.partition ?? "")!;
    const parallel = r.settings.parallel !== undefined && r.settings.parallel < n ? `%${Math.max(1, r.settings.parallel)}` : "";
    const launcher = new SlurmLauncher(settings, { memory: r.memory, cpu: r.cpu, gpu: r.gpu, timeoutMs: r.timeoutMs, array: `0-${n - 1}${parallel}` });
    // The elements' output files (slurm-%A_%a.out) go in tasks/<base>/, and Slurm creates no directories.
    await this.backend.createExclusive(
      taskKey(task.id, "array.json"),
      Buffer.from(JSON.stringify({ step: task.step, items: n, created: new Date().toISOString() })),
    );
    const ask = { step: task.step, memory: r.memory, cpu: r.cpu, gpu: r.gpu, partition: settings.partition };
    const job = await submitOrExplain(launcher, task, ask, (f) => new SubmitRefused(f));
    const elements = new ElementLauncher(new ArrayStates(job.id), launcher);
    return Array.from({ length: n }, (_, index) => {
      const id = `${job.id}_${index}`;
      const outputFile = job.outputFile?.replace(/%a/g, String(index));
      return {
        launcher: elements,
        job: index,
        label: `Slurm array job ${id}`,
        ended: async (status: SlurmStatus, facts: JobFacts) =>
          withOutputFile(jobEnding(`${task.step}[${index}]`, id, outputFile, status.info, r, facts), outputFile),
      };
    });
  }
}

/** The job's own output file, named under its failure (where the rest of what it printed is). */
function withOutputFile(f: StepFailure, file: string | undefined): StepFailure {
  return file ? { ...f, details: [...f.details, `[job output: ${file}]`] } : f;
}

/**
 * The Slurm launcher for the remote transport: submit with sbatch (a script
 * file nbscale writes, resources as options), describe with scontrol (sacct
 * for jobs the controller has forgotten), cancel with scancel.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { LaunchStatus, Launcher, SubmittedTask } from "../remote/kernel-side";
import { taskKey } from "../../worker/remote/protocol";
import type { StepFailure } from "../step-failure";
import { run, sacctJob, showJob, type JobInfo } from "./commands";
import { endedJobFailure } from "./failures";
import { batchScript, sbatchArgs, type JobSpec } from "./script";
import type { SlurmSettings } from "./settings";

export interface SlurmJob {
  id: string;
  /** The job's stdout/stderr file from the kernel's side, when the kernel can read it. */
  outputFile?: string;
}

export interface SlurmStatus extends LaunchStatus {
  info: JobInfo | null;
}

export class SbatchError extends Error {
  constructor(readonly stderr: string) {
    super(`sbatch: ${stderr.trim()}`);
  }
}

/** Resources of one step; the task id comes with the submission. */
export type StepResources = Omit<JobSpec, "task" | "step" | "output">;

const QUEUED = new Set(["PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"]);
const RUNNING = new Set(["RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "RESIZING", "SIGNALING", "STOPPED"]);

export function describe(info: JobInfo | null): SlurmStatus {
  if (!info) return { phase: "ended", label: "no longer known to Slurm", info };
  if (QUEUED.has(info.state)) return { phase: "queued", label: info.reason && info.reason !== "None" ? `${info.state} (${info.reason})` : info.state, info };
  if (RUNNING.has(info.state)) return { phase: "running", label: `${info.state}${info.nodes ? ` on ${info.nodes}` : ""}`, info };
  return { phase: "ended", label: `${info.state}${info.nodes ? ` on ${info.nodes}` : ""}`, info };
}

export class SlurmLauncher implements Launcher<SlurmJob, SlurmStatus> {
  constructor(
    private readonly settings: SlurmSettings,
    private readonly resources: StepResources,
  ) {}

  /** The output file as the nodes see it, and as the kernel does (Slurm expands `%j`). */
  private outputPaths(task: string): { node: string; kernel: string } {
    const s = this.settings;
    const name = this.resources.array ? "slurm-%A_%a.out" : "slurm-%j.out";
    if (s.kernelDatastoreDir !== undefined) {
      // Next to the task in the datastore: kept with it, readable wherever the datastore is.
      return { node: path.join(s.nodeDatastore, taskKey(task, name)), kernel: path.join(s.kernelDatastoreDir, taskKey(task, name)) };
    }
    const dir = s.outputDir ?? s.cwd;
    const p = path.join(dir, `nbscale-${task}-${name.replace(/^slurm-/, "")}`);
    return { node: p, kernel: p };
  }

  async submit(task: SubmittedTask): Promise<SlurmJob> {
    const out = this.outputPaths(task.id);
    const spec: JobSpec = { ...this.resources, step: task.step, task: task.id, output: out.node };
    // sbatch reads the script when it submits (the controller keeps a copy), so a private temp file is enough.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-sbatch-"));
    try {
      const script = path.join(dir, "job.sh");
      fs.writeFileSync(script, batchScript(spec, this.settings), { mode: 0o700 });
      const r = await run("sbatch", sbatchArgs(spec, this.settings, script));
      const id = /^(\d+)/.exec(r.stdout.trim())?.[1];
      if (r.code !== 0 || !id) throw new SbatchError(r.stderr || r.stdout || `exit ${r.code}`);
      return { id, outputFile: out.kernel.replace(/%j|%A/g, id) };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  async status(job: SlurmJob): Promise<SlurmStatus> {
    const infos = (await showJob(job.id)) ?? (await sacctJob(job.id));
    return describe(infos?.[0] ?? null);
  }

  async cancel(job: SlurmJob): Promise<void> {
    const r = await run("scancel", [job.id]);
    if (r.code !== 0 && !/already completing or completed|Invalid job id/i.test(r.stderr)) {
      throw new Error(`scancel ${job.id}: ${r.stderr.trim()}`);
    }
  }
}

/** The last `bytes` of the job's output file, '' when it can't be read (another machine's disk). */
export function readOutputTail(file: string | undefined, bytes = 16384): string {
  if (!file) return "";
  try {
    const fd = fs.openSync(file, "r");
    try {
      const size = fs.fstatSync(fd).size;
      const n = Math.min(size, bytes);
      const buf = Buffer.alloc(n);
      fs.readSync(fd, buf, 0, n, size - n);
      return buf.toString("utf8");
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return "";
  }
}

/**
 * Why a job ended without a result (endedJobFailure), from its last state, the
 * tail of its output file and what its worker reported while it ran.
 */
export function jobEnding(
  step: string,
  job: string,
  outputFile: string | undefined,
  info: JobInfo | null,
  ask: { memory?: number; timeoutMs?: number },
  seen: { peakRss: number; started?: { host: string; pid: number } | null },
): StepFailure {
  return endedJobFailure({
    step,
    job,
    info,
    output: readOutputTail(outputFile),
    memory: ask.memory,
    timeoutMs: ask.timeoutMs,
    peakRss: seen.peakRss,
    node: seen.started?.host,
    pid: seen.started?.pid,
  });
}

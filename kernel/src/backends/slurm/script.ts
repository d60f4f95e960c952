/**
 * The batch script and the sbatch command line of one step. Resources are
 * sbatch options in an argv array; the script is a file nbscale writes, with
 * every word single-quoted, and does one thing: exec the worker on the task.
 */
import { heapLimitMiB } from "../memory";
import type { SlurmSettings } from "./settings";

export interface JobSpec {
  step: string;
  task: string;
  memory?: number;
  cpu?: number;
  gpu?: number;
  timeoutMs?: number;
  /** The job's stdout/stderr file as the nodes see it (`%j`, `%A`, `%a` expanded by Slurm). */
  output: string;
  /** `--array` value for `--foreach`. */
  array?: string;
}

const MiB = 2 ** 20;

/** Quotes one word for sh: nothing inside '…' is special, a ' is closed, escaped, reopened. */
export function shQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `--time` in whole minutes: Slurm's limits have minute granularity. */
export function slurmMinutes(ms: number): number {
  return Math.max(1, Math.ceil(ms / 60_000));
}

/** Job names show in squeue: `nbscale-<step>`. */
export function jobName(step: string): string {
  return `nbscale-${step.replace(/[^A-Za-z0-9_-]/g, "_")}`.slice(0, 64);
}

export function sbatchArgs(spec: JobSpec, s: SlurmSettings, scriptPath: string): string[] {
  const args = ["--parsable", `--job-name=${jobName(spec.step)}`, `--output=${spec.output}`, `--chdir=${s.cwd}`, "--export=ALL", "--no-requeue"];
  if (spec.memory !== undefined) args.push(`--mem=${Math.ceil(spec.memory / MiB)}M`);
  if (spec.cpu !== undefined) args.push(`--cpus-per-task=${spec.cpu}`);
  if (spec.gpu !== undefined && spec.gpu > 0) args.push(`--gres=gpu:${spec.gpu}`);
  if (spec.timeoutMs !== undefined) args.push(`--time=${slurmMinutes(spec.timeoutMs)}`);
  if (s.partition) args.push(`--partition=${s.partition}`);
  if (s.account) args.push(`--account=${s.account}`);
  if (spec.array) args.push(`--array=${spec.array}`);
  args.push(...s.extraFlags, scriptPath);
  return args;
}

export function batchScript(spec: JobSpec, s: SlurmSettings): string {
  const node = [s.nodeBinary];
  // The same heap limit as a local worker for the same --memory, so V8 stops before Slurm kills.
  if (spec.memory !== undefined) node.push(`--max-old-space-size=${heapLimitMiB(spec.memory)}`);
  const argv = [...node, s.nbscaleBin, "worker", "--task", s.nodeDatastore].map(shQuote);
  // An array job's element i runs task `<task>-i` (the one variable the shell expands, in double quotes).
  argv.push(spec.array ? `${shQuote(`${spec.task}-`)}"$SLURM_ARRAY_TASK_ID"` : shQuote(spec.task));
  return [
    "#!/bin/sh",
    `# nbscale step ${spec.step.replace(/[^A-Za-z0-9_-]/g, "_")}, task ${spec.task}: written by the kernel, runs the step once and exits.`,
    // The kernel's NODE_OPTIONS (debuggers, loaders) are not the step's.
    "unset NODE_OPTIONS",
    `exec ${argv.join(" ")}`,
    "",
  ].join("\n");
}

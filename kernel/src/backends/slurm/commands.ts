/**
 * The Slurm commands nbscale runs, always as argv arrays (never a shell
 * line), and what their output means. The controller's view is read with
 * `scontrol show job -o` (one line of KEY=VALUE per job); once the job has
 * aged out of the controller, `sacct` is asked when accounting exists.
 */
import { execFile } from "node:child_process";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a Slurm command; a missing binary is reported as such, not as a failed job. */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20, env: process.env }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new Error(`\`${cmd}\` was not found: --on slurm needs the Slurm client commands (sbatch, scontrol, scancel) on the kernel's PATH`));
        return;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** `KEY=VALUE KEY=VALUE …` of `scontrol show … -o`. Values run to the next ` KEY=`. */
export function parseKeyValues(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=/g;
  const marks: Array<{ key: string; start: number; valueStart: number }> = [];
  for (let m = re.exec(line); m; m = re.exec(line)) marks.push({ key: m[1], start: m.index, valueStart: m.index + m[0].length });
  marks.forEach((k, i) => {
    const end = i + 1 < marks.length ? marks[i + 1].start : line.length;
    out[k.key] = line.slice(k.valueStart, end).trim();
  });
  return out;
}

export interface JobInfo {
  id: string;
  state: string;
  reason: string;
  nodes: string;
  /** `ExitCode=E:S`: the batch script's exit code and the signal that ended it. */
  exitCode: number;
  signal: number;
  timeLimit: string;
  arrayTask?: string;
}

function jobInfo(kv: Record<string, string>): JobInfo {
  const [exitCode, signal] = (kv.ExitCode ?? "0:0").split(":").map((n) => Number(n) || 0);
  const arrayJob = kv.ArrayJobId;
  const arrayTask = kv.ArrayTaskId;
  return {
    id: arrayJob && arrayTask && /^\d+$/.test(arrayTask) ? `${arrayJob}_${arrayTask}` : (kv.JobId ?? "?"),
    state: (kv.JobState ?? "UNKNOWN").split(/[\s+]/)[0],
    reason: kv.Reason ?? "None",
    nodes: kv.NodeList && kv.NodeList !== "(null)" ? kv.NodeList : (kv.BatchHost ?? ""),
    exitCode,
    signal,
    timeLimit: kv.TimeLimit ?? "",
    ...(arrayTask !== undefined ? { arrayTask } : {}),
  };
}

/**
 * The controller's view of a job (every task of an array job), or null when
 * the controller no longer knows it (finished longer ago than MinJobAge).
 */
export async function showJob(id: string): Promise<JobInfo[] | null> {
  const r = await run("scontrol", ["show", "job", "-o", id]);
  if (r.code !== 0) {
    if (/Invalid job id/i.test(r.stderr)) return null;
    throw new Error(`scontrol show job ${id}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  return r.stdout
    .split("\n")
    .filter((l) => l.includes("JobId="))
    .map((l) => jobInfo(parseKeyValues(l)));
}

let accounting: Promise<boolean> | null = null;

/** Whether `sacct` answers here (slurmdbd or a job-completion log); asked once per kernel. */
export function hasAccounting(): Promise<boolean> {
  accounting ??= run("sacct", ["-n", "-X", "-P", "-o", "JobID", "-S", "now"], 10_000).then(
    (r) => r.code === 0 && !/disabled|not running|error/i.test(r.stderr),
    () => false,
  );
  return accounting;
}

/** A finished job's record from accounting, for jobs the controller has forgotten. */
export async function sacctJob(id: string): Promise<JobInfo[] | null> {
  if (!(await hasAccounting())) return null;
  const r = await run("sacct", ["-n", "-X", "-P", "-j", id, "-o", "JobID,State,ExitCode,NodeList,Reason,Timelimit"]);
  if (r.code !== 0) return null;
  const rows = r.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("|"));
  if (rows.length === 0) return null;
  return rows.map(([jid, state, exit, nodes, reason, limit]) => {
    const [exitCode, signal] = (exit ?? "0:0").split(":").map((n) => Number(n) || 0);
    return { id: jid, state: (state ?? "UNKNOWN").split(" ")[0], reason: reason || "None", nodes: nodes ?? "", exitCode, signal, timeLimit: limit ?? "" };
  });
}

export interface NodeInfo {
  name: string;
  cpus: number;
  /** Bytes. */
  memory: number;
  gpus: number;
  partitions: string[];
  state: string;
}

/** Every node, from `scontrol show nodes -o`. */
export async function showNodes(): Promise<NodeInfo[]> {
  const r = await run("scontrol", ["show", "nodes", "-o"]);
  if (r.code !== 0) throw new Error(`scontrol show nodes: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.includes("NodeName="))
    .map((l) => {
      const kv = parseKeyValues(l);
      const gres = kv.Gres ?? "";
      const gpus = [...gres.matchAll(/gpu(?::[^:,(]+)?:(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      return {
        name: kv.NodeName ?? "?",
        cpus: Number(kv.CPUTot ?? kv.CPUs ?? 0),
        memory: Number(kv.RealMemory ?? 0) * 2 ** 20,
        gpus,
        partitions: (kv.Partitions ?? "").split(",").filter(Boolean),
        state: kv.State ?? "",
      };
    });
}

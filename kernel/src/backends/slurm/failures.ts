/**
 * What a Slurm job that ended without a result means, in the user's terms:
 * each of Slurm's endings gets its own message, and an out-of-memory kill
 * gets the same advice (numbers and the `--memory` to ask for) as a local
 * worker that ran out.
 */
import { cellError, deathError } from "../../step/failures";
import type { CellError } from "../../session/errors";
import { formatDuration, formatSize } from "../../magics";
import { humanBytes } from "../memory";
import type { JobInfo, NodeInfo } from "./commands";

export interface EndedJob {
  step: string;
  job: string;
  info: JobInfo | null;
  /** The tail of the job's own stdout/stderr file ('' when unreadable). */
  output: string;
  memory?: number;
  timeoutMs?: number;
  peakRss: number;
  /** Where the worker ran (from started.json), when it got that far. */
  node?: string;
  pid?: number;
}

/** slurmstepd's line for an over-memory kill: `… exceeded memory limit (USED > LIMIT), being killed`. */
const SLURM_OOM = /exceeded memory limit(?: \((\d+) > (\d+)\))?|oom[-_ ]kill event/i;
/** V8 stopping at its heap limit (the job's --max-old-space-size). */
const V8_OOM = /JavaScript heap out of memory|Reached heap limit|Allocation failed - process out of memory/;

/**
 * The USED of slurmstepd's line in bytes. Slurm versions differ in the unit
 * (22.05 prints bytes, older ones KiB): the LIMIT is the job's --mem, so
 * whichever unit makes it match the request is the one.
 */
export function overLimitBytes(used: number, limit: number, requested: number | undefined): number {
  const asKiB = requested !== undefined ? Math.abs(limit * 1024 - requested) < Math.abs(limit - requested) : limit < 2 ** 32;
  return asKiB ? used * 1024 : used;
}

function lastLines(output: string, n = 8): string[] {
  return output
    .trim()
    .split("\n")
    .filter((l) => l.trim())
    .slice(-n)
    .map((l) => `    ${l}`);
}

/**
 * Endings `--retries` re-runs, as it re-runs a local worker's death or
 * timeout: the job died under the step (a signal, a lost or preempted node,
 * the time limit). Not re-run: out of memory (it would fail again; the error
 * says how much to ask for), a cancel from outside (someone meant it), a
 * datastore the nodes can't see, and an exception (the step's own result).
 */
const RETRYABLE_ENDINGS = new Set(["WorkerDied", "StepNodeFailed", "StepPreempted", "StepTimeout"]);

export function retryableEnding(e: CellError): boolean {
  return RETRYABLE_ENDINGS.has(e.ename);
}

export function endedJobError(e: EndedJob): CellError {
  const state = e.info?.state ?? "UNKNOWN";
  // Slurm's name for the node (what squeue shows), else the hostname the worker saw.
  const on = e.info?.nodes || e.node;
  const where = `Slurm job ${e.job}${on ? ` on ${on}` : ""}`;
  const slurmOom = SLURM_OOM.exec(e.output);
  if (state === "OUT_OF_MEMORY" || slurmOom || V8_OOM.test(e.output)) {
    const killedAt = slurmOom?.[1] ? overLimitBytes(Number(slurmOom[1]), Number(slurmOom[2]), e.memory) : 0;
    const heap = !slurmOom && state !== "OUT_OF_MEMORY";
    const base = deathError(
      e.step,
      {
        status: "died",
        death: heap ? "oom-heap" : "oom",
        signal: null,
        code: null,
        stderr: "",
        worker: { id: e.job, pid: e.pid ?? 0 },
        peakRss: Math.max(e.peakRss, killedAt),
      },
      e.memory,
    );
    const how = heap ? "its JavaScript heap hit the limit set for the job" : "Slurm killed the job for exceeding its memory limit";
    return { ...base, traceback: [base.traceback[0], `    (${where}: ${how}; the kernel and its variables are intact)`] };
  }
  switch (state) {
    case "TIMEOUT":
      return cellError(
        "StepTimeout",
        e.timeoutMs !== undefined
          ? `step \`${e.step}\` did not finish within its --timeout ${formatDuration(e.timeoutMs)}: Slurm stopped ${where} at its time limit (${e.info?.timeLimit || "?"}; Slurm counts whole minutes)`
          : `step \`${e.step}\` reached the partition's time limit (${e.info?.timeLimit || "?"}): Slurm stopped ${where}; give it more time with --timeout (e.g. --timeout 2h)`,
      );
    case "CANCELLED":
      return cellError(
        "StepCancelled",
        `step \`${e.step}\`: ${where} was cancelled outside this notebook (scancel, or an administrator); nothing came back`,
        lastLines(e.output, 3),
      );
    case "NODE_FAIL":
      return cellError(
        "StepNodeFailed",
        `step \`${e.step}\`: the node running it${on ? ` (${on})` : ""} failed (Slurm: NODE_FAIL) and ${where} was lost; run the cell again`,
      );
    case "PREEMPTED":
      return cellError(
        "StepPreempted",
        `step \`${e.step}\`: ${where} was preempted by a higher-priority job; run the cell again (or use a partition without preemption)`,
      );
    case "BOOT_FAIL":
      return cellError("StepNodeFailed", `step \`${e.step}\`: the node for ${where} failed to boot (Slurm: BOOT_FAIL); run the cell again`);
    case "DEADLINE":
      return cellError("StepTimeout", `step \`${e.step}\`: ${where} reached its --deadline (from NBSCALE_SLURM_SBATCH_FLAGS) before it finished`);
  }
  if (/no task .* in the datastore/.test(e.output)) {
    return cellError(
      "SlurmDatastoreError",
      `step \`${e.step}\`: ${where} could not find its task in the datastore: the nodes see the datastore at another place (or not at all). Set NBSCALE_SLURM_DATASTORE to the datastore's path as the nodes see it (a shared filesystem), or use an s3:// datastore`,
      lastLines(e.output, 3),
    );
  }
  const how = e.info ? `ended ${state} (exit code ${e.info.exitCode}${e.info.signal ? `, signal ${e.info.signal}` : ""})` : "disappeared from Slurm";
  return cellError("WorkerDied", `step \`${e.step}\`: ${where} ${how} before the step finished; its last output:`, lastLines(e.output));
}

/**
 * sbatch refused the job: when it is about resources, say what the biggest
 * node has, so the user knows what to ask for.
 */
export function submitError(
  step: string,
  stderr: string,
  ask: { memory?: number; cpu?: number; gpu?: number; partition?: string },
  nodes: NodeInfo[] | null,
): CellError {
  const said = stderr
    .split("\n")
    .map((l) => l.replace(/^sbatch: error: /, "").trim())
    .filter(Boolean);
  const summary = said.join("; ") || "sbatch failed";
  const resources = /Memory specification|node configuration is not available|processors requested|generic resource|gres|CPU count|Requested node/i.test(
    stderr,
  );
  if (!resources || !nodes || nodes.length === 0) {
    const partition = /invalid partition/i.test(stderr) ? " (set the partition with --partition or NBSCALE_SLURM_PARTITION; `sinfo` lists them)" : "";
    return cellError("SlurmSubmitError", `step \`${step}\` was not submitted: ${summary}${partition}`);
  }
  const pool = ask.partition ? nodes.filter((n) => n.partitions.includes(ask.partition!)) : nodes;
  const candidates = pool.length > 0 ? pool : nodes;
  const biggest = [...candidates].sort((a, b) => b.memory - a.memory || b.cpus - a.cpus)[0];
  const asked = [
    ask.memory !== undefined ? `--memory ${formatSize(ask.memory)}` : "",
    ask.cpu !== undefined ? `--cpu ${ask.cpu}` : "",
    ask.gpu ? `--gpu ${ask.gpu}` : "",
  ]
    .filter(Boolean)
    .join(" ");
  const gpus = biggest.gpus > 0 ? `, ${biggest.gpus} GPUs` : ", no GPUs";
  const scope = ask.partition ? `in partition ${ask.partition}` : "in the cluster";
  return cellError(
    "StepResourceError",
    `step \`${step}\` asks for ${asked || "more than any node has"}, but no node ${scope} can give that: the largest node, ${biggest.name}, has ${humanBytes(biggest.memory)} of memory and ${biggest.cpus} CPUs${gpus}; ask for at most that`,
    [`    (sbatch: ${summary})`],
  );
}

/**
 * What a Slurm job that ended without a result means, in the user's terms:
 * each of Slurm's endings gets its own message, and an out-of-memory kill
 * gets the same advice (numbers and the `--memory` to ask for) as a local
 * worker that ran out.
 */
import { formatSize } from "../../magics/units";
import { humanBytes } from "../memory";
import { failure, notStarted, outOfMemory, timedOut, type StepFailure } from "../step-failure";
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
    .map((l) => `${l}`);
}

export function endedJobFailure(e: EndedJob): StepFailure {
  const state = e.info?.state ?? "UNKNOWN";
  // Slurm's name for the node (what squeue shows), else the hostname the worker saw.
  const on = e.info?.nodes || e.node;
  const where = `Slurm job ${e.job}${on ? ` on ${on}` : ""}`;
  const slurmOom = SLURM_OOM.exec(e.output);
  if (state === "OUT_OF_MEMORY" || slurmOom || V8_OOM.test(e.output)) {
    const killedAt = slurmOom?.[1] ? overLimitBytes(Number(slurmOom[1]), Number(slurmOom[2]), e.memory) : 0;
    const heap = !slurmOom && state !== "OUT_OF_MEMORY";
    return outOfMemory({
      step: e.step,
      requested: e.memory,
      used: Math.max(e.peakRss, killedAt),
      heapLimit: heap,
      how: `${where}: ${heap ? "its JavaScript heap hit the limit set for the job" : "Slurm killed the job for exceeding its memory limit"}`,
      job: e.job,
    });
  }
  switch (state) {
    case "TIMEOUT":
      return e.timeoutMs !== undefined
        ? timedOut(e.step, e.timeoutMs, `: Slurm stopped ${where} at its time limit (${e.info?.timeLimit || "?"}; Slurm counts whole minutes)`, e.job)
        : failure("timeout", "StepTimeout", `step \`${e.step}\` reached the partition's time limit (${e.info?.timeLimit || "?"}): Slurm stopped ${where}`, [], {
            fix: { kind: "more-time" },
            job: e.job,
          });
    case "CANCELLED":
      return failure(
        "cancelled",
        "StepCancelled",
        `step \`${e.step}\`: ${where} was cancelled from outside (scancel, or an administrator); nothing came back`,
        lastLines(e.output, 3),
        {
          job: e.job,
        },
      );
    case "NODE_FAIL":
      return failure(
        "node-failed",
        "StepNodeFailed",
        `step \`${e.step}\`: the node running it${on ? ` (${on})` : ""} failed (Slurm: NODE_FAIL) and ${where} was lost`,
        [],
        {
          fix: { kind: "run-again" },
          job: e.job,
        },
      );
    case "PREEMPTED":
      return failure(
        "preempted",
        "StepPreempted",
        `step \`${e.step}\`: ${where} was preempted by a higher-priority job (a partition without preemption avoids it)`,
        [],
        {
          fix: { kind: "run-again" },
          job: e.job,
        },
      );
    case "BOOT_FAIL":
      return failure("node-failed", "StepNodeFailed", `step \`${e.step}\`: the node for ${where} failed to boot (Slurm: BOOT_FAIL)`, [], {
        fix: { kind: "run-again" },
        job: e.job,
      });
    case "DEADLINE":
      return failure("timeout", "StepTimeout", `step \`${e.step}\`: ${where} reached its --deadline (from NBSCALE_SLURM_SBATCH_FLAGS) before it finished`, [], {
        job: e.job,
      });
  }
  if (/no task .* in the datastore/.test(e.output)) {
    return notStarted(
      "SlurmDatastoreError",
      `step \`${e.step}\`: ${where} could not find its task in the datastore: the nodes see the datastore at another place (or not at all). Set NBSCALE_SLURM_DATASTORE to the datastore's path as the nodes see it (a shared filesystem), or use an s3:// datastore`,
      lastLines(e.output, 3),
    );
  }
  const how = e.info ? `ended ${state} (exit code ${e.info.exitCode}${e.info.signal ? `, signal ${e.info.signal}` : ""})` : "disappeared from Slurm";
  const tail = lastLines(e.output);
  return failure("worker-died", "WorkerDied", `step \`${e.step}\`: ${where} ${how} before the step finished${tail.length ? "; its last output:" : ""}`, tail, {
    job: e.job,
  });
}

/**
 * sbatch refused the job: when it is about resources, say what the biggest
 * node has, so the user knows what to ask for.
 */
export function submitFailure(
  step: string,
  stderr: string,
  ask: { memory?: number; cpu?: number; gpu?: number; partition?: string },
  nodes: NodeInfo[] | null,
): StepFailure {
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
    return notStarted("SlurmSubmitError", `step \`${step}\` was not submitted: ${summary}${partition}`);
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
  return notStarted(
    "StepResourceError",
    `step \`${step}\` asks for ${asked || "more than any node has"}, but no node ${scope} can give that: the largest node, ${biggest.name}, has ${humanBytes(biggest.memory)} of memory and ${biggest.cpus} CPUs${gpus}; ask for at most that`,
    [`(sbatch: ${summary})`],
  );
}

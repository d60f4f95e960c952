/**
 * What `--on slurm` needs, from the `%%step` line and the kernel's
 * environment (docs/slurm.md):
 *
 *   NBSCALE_SLURM_PARTITION     partition when the step gives no --partition
 *   NBSCALE_SLURM_ACCOUNT       --account to charge
 *   NBSCALE_SLURM_SBATCH_FLAGS  more sbatch options, split like a shell would (quotes work)
 *   NBSCALE_SLURM_DATASTORE     the datastore as the nodes see it (default: the kernel's)
 *   NBSCALE_SLURM_NODE          node binary on the nodes (default: the kernel's)
 *   NBSCALE_SLURM_NBSCALE       nbscale's bin/nbscale.js on the nodes (default: the kernel's)
 *   NBSCALE_SLURM_OUTPUT_DIR    where the job's own stdout/stderr file goes when the
 *                               datastore is not a directory (default: the working directory)
 */
import * as path from "node:path";
import type { DatastoreLocation } from "../../store/location";

export class SlurmConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = "SlurmConfigError";
  }
}

export interface SlurmSettings {
  partition?: string;
  account?: string;
  extraFlags: string[];
  /** Datastore location string the worker is given. */
  nodeDatastore: string;
  /** The same directory from the kernel's side when the datastore is a directory (for the job's output file). */
  kernelDatastoreDir?: string;
  nodeBinary: string;
  nbscaleBin: string;
  outputDir?: string;
  cwd: string;
}

const NAME = /^[A-Za-z0-9_.+-]+$/;

export function slurmSettings(input: {
  partition?: string;
  env: NodeJS.ProcessEnv;
  datastore: DatastoreLocation;
  cwd: string;
  packageDir: string;
}): SlurmSettings {
  const { env } = input;
  const partition = input.partition ?? (env.NBSCALE_SLURM_PARTITION || undefined);
  if (partition !== undefined && !NAME.test(partition)) {
    const from = input.partition !== undefined ? "--partition" : "NBSCALE_SLURM_PARTITION";
    throw new SlurmConfigError(from, `${from} ${JSON.stringify(partition)} is not a partition name (letters, digits, . _ + -)`);
  }
  const account = env.NBSCALE_SLURM_ACCOUNT || undefined;
  if (account !== undefined && !NAME.test(account)) {
    throw new SlurmConfigError("NBSCALE_SLURM_ACCOUNT", `NBSCALE_SLURM_ACCOUNT=${JSON.stringify(account)} is not an account name`);
  }
  let extraFlags: string[] = [];
  try {
    extraFlags = splitWords(env.NBSCALE_SLURM_SBATCH_FLAGS ?? "");
  } catch (e) {
    throw new SlurmConfigError("NBSCALE_SLURM_SBATCH_FLAGS", `NBSCALE_SLURM_SBATCH_FLAGS: ${(e as Error).message}`);
  }
  for (const f of extraFlags) {
    // The script is ours and so are these: a flag that replaces them would break the step, not tune it.
    if (/^--?(wrap|output|o|error|e|array|a|parsable|export|chdir|D|job-name|J)(=|$)/.test(f)) {
      throw new SlurmConfigError("NBSCALE_SLURM_SBATCH_FLAGS", `NBSCALE_SLURM_SBATCH_FLAGS: ${f} is set by nbscale itself; leave it out`);
    }
  }
  const ds = input.datastore;
  const nodeDatastore = env.NBSCALE_SLURM_DATASTORE || ds.path;
  if (!/^s3:\/\//i.test(nodeDatastore) && !path.isAbsolute(nodeDatastore)) {
    throw new SlurmConfigError(
      "NBSCALE_SLURM_DATASTORE",
      `NBSCALE_SLURM_DATASTORE=${nodeDatastore} must be an absolute path (as the nodes see it) or s3://bucket/prefix`,
    );
  }
  return {
    partition,
    account,
    extraFlags,
    nodeDatastore,
    kernelDatastoreDir: ds.kind === "fs" && !/^s3:\/\//i.test(nodeDatastore) ? ds.path : undefined,
    nodeBinary: env.NBSCALE_SLURM_NODE || process.execPath,
    nbscaleBin: env.NBSCALE_SLURM_NBSCALE || path.join(input.packageDir, "bin", "nbscale.js"),
    outputDir: env.NBSCALE_SLURM_OUTPUT_DIR || undefined,
    cwd: input.cwd,
  };
}

/** Splits a flags string the way sh would for plain words, '…', "…" and backslashes (no expansions). */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new Error("unterminated ' quote");
      cur += s.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === "\\" && j + 1 < s.length) j++;
        cur += s[j];
      }
      if (j >= s.length) throw new Error('unterminated " quote');
      i = j;
      inWord = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

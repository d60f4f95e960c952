/**
 * Where steps run, registered in one place: `--on` names a backend
 * (backends/step-backend.ts), made once per kernel when a step first asks
 * for it, so the Slurm and Batch modules (and the AWS SDK) load only then.
 * Adding a target is one entry here and one StepBackend.
 */
import type { LocalPool } from "../backends/local-pool";
import type { StepBackend } from "../backends/step-backend";
import { LocalBackend } from "../backends/local-backend";
import { KernelBackend } from "./kernel-backend";

export interface BackendHost {
  cwd: string;
  pool(): LocalPool;
}

const REGISTRY: Record<string, (host: BackendHost) => Promise<StepBackend>> = {
  local: async (host) => new LocalBackend(() => host.pool()),
  kernel: async (host) => new KernelBackend(host.cwd, () => host.pool().totalMemory),
  slurm: async (host) => new (await import("../backends/slurm/backend")).SlurmBackend(host.cwd),
  batch: async (host) => new (await import("../backends/batch/run")).BatchBackend({ env: process.env, cwd: host.cwd, notebookDir: host.cwd }),
};

export class Backends {
  private readonly made = new Map<string, Promise<StepBackend>>();

  constructor(private readonly host: BackendHost) {}

  get(target: string): Promise<StepBackend> {
    const make = REGISTRY[target];
    if (!make) return Promise.reject(new Error(`no backend for --on ${target}; there are: ${Object.keys(REGISTRY).join(", ")}`));
    let b = this.made.get(target);
    if (!b) this.made.set(target, (b = make(this.host)));
    return b;
  }
}

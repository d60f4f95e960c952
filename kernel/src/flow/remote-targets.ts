/**
 * Which flow steps run as scheduler jobs, and the launchers for them. The
 * Slurm and Batch modules (and the AWS SDK) load only when a step of the
 * run asks for them, so a local run starts as fast as before.
 */
import { dirname } from "node:path";
import type { Datastore } from "../store";
import type { DatastoreLocation } from "../store/location";
import type { StepDef, StepSettings, Target } from "./api";
import type { StepLauncher } from "./pool";
import { RemoteFlowLauncher, type RemoteTarget } from "./remote-launcher";

export interface RemoteTargets {
  /** `local` counts foreach items (see RemoteFlowLauncher). */
  launchers(ds: Datastore, settingsOf: (step: string) => StepSettings, local: StepLauncher): Map<Target, StepLauncher>;
}

export async function prepareRemoteTargets(
  steps: readonly StepDef[],
  targetOf: (s: StepDef) => Target,
  datastore: DatastoreLocation,
  flowPath: string,
): Promise<RemoteTargets> {
  const targets: RemoteTarget[] = [];
  const slurm = steps.filter((s) => targetOf(s) === "slurm");
  if (slurm.length > 0) {
    const { SlurmTarget } = await import("./remote-slurm");
    targets.push(await SlurmTarget.preflight(slurm, datastore, dirname(flowPath)));
  }
  const batch = steps.filter((s) => targetOf(s) === "batch");
  if (batch.length > 0) {
    const { BatchTarget } = await import("./remote-batch");
    targets.push(await BatchTarget.preflight(batch, datastore, dirname(flowPath)));
  }
  return {
    launchers: (ds, settingsOf, local) => new Map(targets.map((t) => [t.name, new RemoteFlowLauncher(t, ds, settingsOf, local)])),
  };
}

/**
 * A flow step as a remote task: what `nbscale run` puts in the datastore for
 * a Slurm or Batch job, and what the job's `nbscale worker --task` writes
 * back. It uses the remote transport's layout (backends/remote/protocol.ts:
 * task.json, started.json, numbered event chunks, result.json) so the kernel
 * side tails it with the same code as a `%%step --on slurm|batch` cell; only
 * the payload differs: instead of a packaged cell program, task.json carries
 * the flow worker's own `WorkerTask`, and the flow's compiled JavaScript is a
 * content-addressed blob (written once per run, whatever the number of jobs).
 *
 * The job runs the same flow worker code as a local step (flow/worker.ts):
 * it reads its inputs from the datastore, runs the body and records the
 * execution itself, so a remote step's artifacts hash exactly like a local
 * one's.
 */
import type { RemoteResult } from "../worker/remote/protocol";
import type { WorkerReply, WorkerTask } from "./worker";

/** task.json of a flow step; `kind` tells the worker it is not a packaged cell. */
export interface FlowRemoteTask {
  format: number;
  kind: "flow";
  task: string;
  step: string;
  attempt: number;
  env: Record<string, string>;
  /** The runner's task; `jsPath` and `datastore` are replaced by the worker with what its machine sees. */
  flow: WorkerTask;
  /** SHA-256 of the compiled flow module, a blob in the datastore. */
  jsSha256: string;
  memory?: number;
  flushMs: number;
  created: string;
}

/** result.json of a flow step: the transport's result plus the flow worker's reply. */
export type FlowRemoteResult = RemoteResult & { flow: WorkerReply };

export function isFlowTask(task: unknown): task is FlowRemoteTask {
  return typeof task === "object" && task !== null && (task as { kind?: unknown }).kind === "flow";
}

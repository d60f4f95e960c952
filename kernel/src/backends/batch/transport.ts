/**
 * The Batch backend's view of the generic remote transport
 * (`backends/remote/`): upload a task (program + encoded inputs,
 * content-addressed) to the datastore, follow the event log its worker
 * appends, read its result. Batch adds nothing to it; this file only adapts
 * names, so the job runs exactly `nbscale worker --task DATASTORE TASK`.
 */
import type { EncodedValues } from "../../worker/codec";
import type { StepEvent, StepProgram } from "../../worker/events";
import type { TaskResult } from "../local-pool";

export interface TaskUpload {
  step: string;
  attempt: number;
  env: Record<string, string>;
  program: StepProgram;
  inputs: Pick<EncodedValues, "specs" | "frames">;
}

/** A task's result without the worker identity (the launcher knows that). */
export type RemoteResult = Omit<TaskResult, "worker">;

export interface TaskStore {
  /** Uploads the task; returns its id (what the worker is started with). */
  upload(task: TaskUpload): Promise<string>;
  /**
   * Streams the task's events to `onEvent` until its result is committed
   * (then resolves with it) or `signal` aborts (then resolves null).
   */
  follow(task: string, o: { onEvent(e: StepEvent): void; signal: AbortSignal }): Promise<RemoteResult | null>;
  /** Writes a small immutable object under the datastore prefix, if absent. */
  putSmall(key: string, data: Uint8Array): Promise<void>;
}

export async function openTaskStore(datastore: string): Promise<TaskStore> {
  void datastore;
  throw new Error("the remote transport (backends/remote) is not in this build yet");
}

/**
 * What a worker and its launcher say to each other, independent of how the
 * bytes travel. The local pool carries these as zeromq messages (worker/wire);
 * a remote backend (Batch, Slurm) can append the same events as JSON lines to
 * a log in the datastore and store the result's values as artifacts, and the
 * kernel tails that log: a `StepEvent` is self-contained JSON for that reason.
 */
import type { MimeBundle } from "../client/display";
import type { SpilledFrame } from "./spill";
import type { DatastoreLocation } from "../store/location";

/** Output produced while a step runs, in the order the step produced it. */
export type StepEvent =
  | { type: "stream"; name: "stdout" | "stderr"; text: string }
  | { type: "display"; data: MimeBundle; metadata: Record<string, unknown>; displayId?: string; update: boolean }
  | { type: "clear"; wait: boolean };

/** A serialized value's place in a message: its name, type and how many frames it spans. */
export interface ValueSpec {
  name: string;
  type: string;
  frames: number;
  /** The value is not in the frames (`frames` is 0) but in the datastore (step/lazy.ts). */
  lazy?: LazySpec;
}

/** A value that stays in the datastore: where, and what the blob holds. */
export interface LazySpec {
  store: DatastoreLocation;
  sha256: string;
  size: number;
  kind: "v8" | "source";
  class?: string;
}

/** Outputs bigger than `minBytes` are stored by the worker in `store` instead of being sent back. */
export interface LazyOutputs {
  store: DatastoreLocation;
  minBytes: number;
}

/**
 * The code of a step, ready to run: one JavaScript function expression
 * (built by step/package.ts) taking `(__nbscale, require, exports, module)`
 * and resolving to the step's value outputs by name.
 */
export interface StepProgram {
  /** Used as the script's file name, so stack frames can be mapped back. */
  filename: string;
  source: string;
  /** The notebook's own modules the step imports, compiled (paths relative to the notebook folder). */
  modules?: Record<string, string>;
}

/** kernel → worker: run this. The inputs follow as frames. */
export type TaskHeader = {
  type: "task";
  task: string;
  step: string;
  attempt: number;
  env: Record<string, string>;
  program: StepProgram;
  inputs: ValueSpec[];
  /** Input frames sent as files (worker/spill.ts). */
  spilled: SpilledFrame[];
  /** Where the worker spills its big output frames (the kernel's private data directory). */
  spillDir?: string;
  /** Set by the kernel to keep big outputs in the datastore (step/lazy.ts). */
  lazy?: LazyOutputs;
};

export interface RemoteError {
  name: string;
  message: string;
  stack?: string;
}

/** An output that could not come back, and why. */
export interface OutputStub {
  name: string;
  type: string;
  reason: string;
}

/** worker → kernel messages. */
export type WorkerHeader =
  | { type: "hello"; worker: string; pid: number }
  | { type: "event"; task: string; seq: number; event: StepEvent }
  | { type: "done"; task: string; outputs: ValueSpec[]; stubs: OutputStub[]; spilled: SpilledFrame[] }
  | { type: "failed"; task: string; error: RemoteError };

/** kernel → worker messages. */
export type KernelHeader = TaskHeader | { type: "shutdown" };

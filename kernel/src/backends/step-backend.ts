/**
 * What a place that runs steps implements: one interface with a fixed
 * lifecycle, so the step runtime (step/dispatch.ts, and the retry policy it
 * applies) knows no target. Local workers, the kernel itself (`--on
 * kernel`), Slurm and AWS Batch are its implementations, registered in one
 * place (step/backends.ts) and loaded when a step first asks for them.
 *
 * The lifecycle of one attempt:
 *
 * 1. `check`: refuse a request this target can never run (more memory than
 *    the machine has, a GPU on local workers) before anything is uploaded,
 *    submitted or started; the refusal is a failure, worded once.
 * 2. `run`: start the attempt, report the job's states while it waits and
 *    runs (into the request's `status`, or a line of its own), stream the
 *    step's output (`onEvent`), and end with the worker's result — or, when
 *    it ended without one, throw `StepFailed` with how it ended, as facts.
 * 3. `stop`: on interrupt, stop what runs (kill the worker, scancel,
 *    TerminateJob); `run` then ends as interrupted.
 */
import type { EncodedValues } from "../worker/codec";
import type { LazyOutputs, StepEvent, StepProgram } from "../worker/events";
import type { TaskResult } from "./local-pool";
import type { StepFailure } from "./step-failure";
import type { JobStatusSink } from "./batch/view";

export interface StepRequest {
  step: string;
  /** 1 for the first try. */
  attempt: number;
  memory?: number;
  cpu?: number;
  gpu?: number;
  timeoutMs?: number;
  /** `--retries`: only a backend that retries by itself (Batch's retryStrategy) reads it. */
  retries?: number;
  env: Record<string, string>;
  /** Target settings of the `%%step` line. */
  queue?: string;
  image?: string;
  partition?: string;
  program: StepProgram;
  inputs: Pick<EncodedValues, "specs" | "frames">;
  /** The inputs as the objects themselves, for a backend that runs in this process (`--on kernel`): nothing is copied. */
  liveInputs?: () => Promise<Record<string, unknown>>;
  /** Outputs kept in the datastore rather than shipped to the kernel (step/lazy.ts). */
  lazy?: LazyOutputs;
  onEvent(event: StepEvent): void;
  /** The step's tracked status, when the caller shows one: job states go there. */
  status?: JobStatusSink;
}

/** What `check` looks at: the resources a step asks for, before anything of it is packaged. */
export type StepAsk = Pick<StepRequest, "step" | "memory" | "cpu" | "gpu">;

/**
 * What a run ended with: the worker's result; where it ran, when the backend
 * knows better than the worker; and, from a backend in this process, the
 * declared values themselves (never serialized).
 */
export type StepResult = TaskResult & { host?: string; values?: Map<string, unknown> };

export interface StepBackend {
  /** The `--on` value it serves. */
  readonly target: string;
  /** It retries an attempt by itself (AWS Batch's retryStrategy): the runtime then makes one attempt. */
  readonly retriesItself?: boolean;
  /** Refuses what this target can never run, before anything is uploaded or started; null: go ahead. */
  check?(ask: StepAsk): StepFailure | null;
  /** The most memory an attempt can be given (this machine's, for local workers); undefined: the target's own limits decide. */
  readonly maxMemory?: number;
  run(req: StepRequest): Promise<StepResult>;
  /** The interrupt: stops the attempt that runs (its `run` ends as interrupted). */
  stop(): void;
}

/** An attempt that ended without a result from its worker: how, as facts (and the job, when one was submitted). */
export class StepFailed extends Error {
  constructor(
    readonly failure: StepFailure,
    readonly jobId?: string,
  ) {
    super(failure.message);
    this.name = "StepFailed";
  }
}

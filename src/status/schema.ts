/**
 * The step-status payload: what the kernel publishes (as display_data with
 * a display_id, then update_display_data) while a `%%step` cell runs, under
 * the MIME type {@link STEP_STATUS_MIME}, next to a text/plain fallback for
 * frontends without this extension (VS Code, nbconvert).
 *
 * The kernel-side producer is kernel/src/session/step-status.ts; the two
 * files describe the same JSON and are kept in step by
 * src/__tests__/status-kernel.spec.ts, which feeds the kernel's bundles to
 * this module's {@link parseStepStatus}.
 *
 * Everything but `state` is optional: a backend reports what it knows
 * (the local pool knows the worker pid and the peak memory; Batch knows a job
 * id and often no peak). Unknown fields are ignored, so the kernel may add
 * fields without breaking older frontends.
 */

/** The MIME type of a step-status bundle. */
export const STEP_STATUS_MIME = 'application/vnd.nbscale.step+json';

/** The lifecycle of one step execution. */
export type StepState =
  'queued' | 'starting' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const STEP_STATES: readonly StepState[] = [
  'queued',
  'starting',
  'running',
  'succeeded',
  'failed',
  'cancelled'
];

/** States after which nothing changes any more. */
export function isFinalState(state: StepState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

/** Why a step failed; `oom` offers the "Re-run with 2× memory" button. */
export type StepErrorKind =
  | 'oom'
  | 'exception'
  | 'timeout'
  | 'killed'
  | 'serialization'
  | 'infrastructure'
  | string;

export interface IStepStatusError {
  kind: StepErrorKind;
  message: string;
  /**
   * For `oom`: the memory the kernel suggests asking for next (a SIZE as
   * written in `--memory`, e.g. `4G`), when it knows better than "twice".
   */
  suggestedMemory?: string;
}

export interface IStepStatus {
  /** The step's name (from `%%step NAME`), or the cell's generated one. */
  step: string;
  state: StepState;
  /** kernel | local | batch | slurm. */
  target?: string;
  /** Local worker id (e.g. `w3 pid 4242`). */
  worker?: string;
  /** AWS Batch or Slurm job id. */
  jobId?: string;
  memory?: {
    /** What `--memory` asked for. */
    requestedBytes?: number | null;
    /** The highest resident memory seen so far. */
    peakBytes?: number | null;
  };
  /** ISO time the step started running (absent while queued). */
  startedAt?: string;
  /**
   * Run time in ms when the kernel sent this update; while running the
   * frontend keeps counting from `startedAt`.
   */
  elapsedMs?: number;
  /** 1 for the first try; 2 after one retry; ... */
  attempt?: number;
  /** `--retries`: how many retries are allowed in all. */
  retries?: number;
  /** Progress of a `--foreach` step, in items. */
  foreach?: { done: number; running: number; failed: number; total: number };
  /**
   * A scheduler's job (AWS Batch, Slurm): its own state and the time spent
   * in each state so far (`ms` absent for a final state). `state` above is
   * what it means for the step (RUNNABLE is `queued`).
   */
  job?: IJobStates;
  error?: IStepStatusError | null;
}

export interface IJobStates {
  system: string;
  state: string;
  states: Array<{ state: string; ms?: number }>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * Read a payload defensively (it comes from a kernel, possibly a newer or
 * older one): returns null when it is not a step status at all, otherwise
 * the fields that have the documented types.
 */
export function parseStepStatus(data: unknown): IStepStatus | null {
  if (!isRecord(data)) {
    return null;
  }
  const state = data.state;
  if (
    typeof state !== 'string' ||
    !(STEP_STATES as readonly string[]).includes(state)
  ) {
    return null;
  }
  const out: IStepStatus = {
    step: str(data.step) ?? 'step',
    state: state as StepState
  };
  const target = str(data.target);
  if (target) {
    out.target = target;
  }
  const worker = str(data.worker);
  if (worker) {
    out.worker = worker;
  }
  const jobId = str(data.jobId);
  if (jobId) {
    out.jobId = jobId;
  }
  if (isRecord(data.memory)) {
    const requestedBytes = num(data.memory.requestedBytes);
    const peakBytes = num(data.memory.peakBytes);
    if (requestedBytes !== undefined || peakBytes !== undefined) {
      out.memory = { requestedBytes, peakBytes };
    }
  }
  const startedAt = str(data.startedAt);
  if (startedAt && !Number.isNaN(Date.parse(startedAt))) {
    out.startedAt = startedAt;
  }
  const elapsedMs = num(data.elapsedMs);
  if (elapsedMs !== undefined) {
    out.elapsedMs = elapsedMs;
  }
  const attempt = num(data.attempt);
  if (attempt !== undefined && attempt >= 1) {
    out.attempt = Math.floor(attempt);
  }
  const retries = num(data.retries);
  if (retries !== undefined) {
    out.retries = Math.floor(retries);
  }
  if (isRecord(data.foreach)) {
    const f = data.foreach;
    const total = num(f.total);
    if (total !== undefined) {
      out.foreach = {
        done: num(f.done) ?? 0,
        running: num(f.running) ?? 0,
        failed: num(f.failed) ?? 0,
        total
      };
    }
  }
  if (isRecord(data.job) && Array.isArray(data.job.states)) {
    const states = data.job.states
      .filter(isRecord)
      .map(j => ({ state: str(j.state) ?? '?', ms: num(j.ms) }));
    out.job = {
      system: str(data.job.system) ?? 'job',
      state: str(data.job.state) ?? states[states.length - 1]?.state ?? '?',
      states
    };
  }
  if (isRecord(data.error)) {
    out.error = {
      kind: str(data.error.kind) ?? 'exception',
      message: typeof data.error.message === 'string' ? data.error.message : ''
    };
    const suggested = str(data.error.suggestedMemory);
    if (suggested) {
      out.error.suggestedMemory = suggested;
    }
  }
  return out;
}

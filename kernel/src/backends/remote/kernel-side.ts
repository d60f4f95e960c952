/**
 * The kernel's half of the remote transport, shared by every launcher
 * (Slurm now, Batch next): put the task in the datastore, let the launcher
 * start a job for it, then tail the worker's event log into the cell and
 * watch the launcher's view of the job until the worker's result appears,
 * the job ends without one (the launcher then says why), or the user
 * interrupts (the launcher cancels the job).
 *
 * A launcher only knows how to start, describe and cancel a job; it never
 * touches the data, and the worker never knows which launcher started it.
 */
import type { StorageBackend } from "../../store/backend";
import type { EncodedValues } from "../../worker/codec";
import type { StepEvent, StepProgram } from "../../worker/events";
import { EventLogTailer } from "../../worker/remote/event-log";
import { attemptKey, FORMAT, newTaskId, taskKey, type RemoteResult, type RemoteStarted, type RemoteTask } from "../../worker/remote/protocol";
import { storeValues } from "../../worker/remote/values";

/** What a launcher reports about its job. */
export interface LaunchStatus {
  phase: "queued" | "running" | "ended";
  /** For the cell, e.g. `PENDING (Resources)`, `RUNNING on node-3`. */
  label: string;
}

export interface Launcher<J, S extends LaunchStatus> {
  /** Starts a job that runs `nbscale worker --task <datastore> <task.id>`. */
  submit(task: SubmittedTask): Promise<J>;
  status(job: J): Promise<S>;
  cancel(job: J): Promise<void>;
}

/** What a launcher needs to know about the task it starts. */
export interface SubmittedTask {
  id: string;
  step: string;
  attempt: number;
  memory?: number;
}

export interface TaskRequest {
  step: string;
  attempt: number;
  env: Record<string, string>;
  program: StepProgram;
  inputs: Pick<EncodedValues, "specs" | "frames">;
  memory?: number;
  /** How often the worker writes its output (ms); 200 by default. */
  flushMs?: number;
  /** A chosen task id (a Slurm array element must be `<base>-<index>`); a fresh one otherwise. */
  id?: string;
}

/** Writes the inputs (those not stored yet) and `task.json`. */
export async function putTask(backend: StorageBackend, req: TaskRequest): Promise<{ task: SubmittedTask; uploadedBytes: number }> {
  const stored = await storeValues(backend, req.inputs);
  const id = req.id ?? newTaskId(req.step);
  const body: RemoteTask = {
    format: FORMAT,
    task: id,
    step: req.step,
    attempt: req.attempt,
    env: req.env,
    program: req.program,
    inputs: stored.refs,
    ...(req.memory !== undefined ? { memory: req.memory } : {}),
    flushMs: req.flushMs ?? 200,
    created: new Date().toISOString(),
  };
  if (!(await backend.createExclusive(taskKey(id, "task.json"), Buffer.from(JSON.stringify(body))))) {
    throw new Error(`task ${id} exists already`);
  }
  return { task: { id, step: req.step, attempt: req.attempt, memory: req.memory }, uploadedBytes: stored.uploaded };
}

/** `attempt`: the launcher's attempt the outcome is from (1 unless it retried the job). */
export type RemoteOutcome<S> =
  | { kind: "result"; result: RemoteResult; started: RemoteStarted | null; status: S | null; attempt: number }
  /** The job ended and the worker wrote no result: the launcher explains why from `status`. */
  | { kind: "ended"; status: S; started: RemoteStarted | null; peakRss: number; attempt: number }
  | { kind: "cancelled"; status: S | null; started: RemoteStarted | null; peakRss: number; attempt: number };

export interface WatchOptions<J, S extends LaunchStatus> {
  backend: StorageBackend;
  task: SubmittedTask;
  launcher: Launcher<J, S>;
  job: J;
  onEvent(e: StepEvent): void;
  /** Called when the launcher's status label changes. */
  onStatus(s: S, started: RemoteStarted | null): void;
  signal: AbortSignal;
  /** Between two looks at the event log (ms). */
  tailMs?: number;
  /** Between two questions to the launcher: starts here and backs off to `maxStatusMs`. */
  statusMs?: number;
  maxStatusMs?: number;
  /** After the launcher says the job ended, how long a result may take to become visible (ms). */
  endGraceMs?: number;
  /** How many attempts the launcher may make of the job (its own retries); 1 by default. */
  maxAttempts?: number;
  /** A retry's worker started: output from here on is that attempt's. */
  onAttempt?(attempt: number, started: RemoteStarted): void;
}

/** Launcher status errors tolerated in a row (a busy controller) before giving up. */
const STATUS_ERRORS = 10;

export async function watchTask<J, S extends LaunchStatus>(o: WatchOptions<J, S>): Promise<RemoteOutcome<S>> {
  let attempt = 1;
  let tailer = new EventLogTailer(o.backend, o.task.id, attempt);
  const tailMs = o.tailMs ?? 200;
  let statusMs = o.statusMs ?? 500;
  const maxStatusMs = o.maxStatusMs ?? 5000;
  let status: S | null = null;
  let started: RemoteStarted | null = null;
  let peakRss = 0;
  let nextStatus = 0;
  let endedAt: number | null = null;
  let statusErrors = 0;

  const emit = async (upTo?: number) => {
    for (const r of await tailer.poll(upTo)) {
      if (r.type === "usage") peakRss = Math.max(peakRss, r.peakRss);
      else o.onEvent(r);
    }
  };
  const readKey = async <T>(key: string): Promise<T | null> => {
    const b = await o.backend.get(key);
    return b ? (JSON.parse(b.toString("utf8")) as T) : null;
  };
  const readJson = <T>(file: string) => readKey<T>(taskKey(o.task.id, file));
  const follow = (n: number) => {
    attempt = n;
    tailer = new EventLogTailer(o.backend, o.task.id, n);
  };

  for (;;) {
    if (o.signal.aborted) {
      await o.launcher.cancel(o.job);
      await emit().catch(() => undefined);
      const s = await o.launcher.status(o.job).catch(() => status);
      return { kind: "cancelled", status: s, started, peakRss, attempt };
    }
    await emit();
    if (!started) {
      started = await readKey<RemoteStarted>(attemptKey(o.task.id, attempt, "started.json"));
      // The worker is up: ask the launcher now, so the cell shows it running without waiting for the next poll.
      if (started && status?.phase === "queued") nextStatus = 0;
    }
    if (attempt < (o.maxAttempts ?? 1)) {
      // Only a retry writes the next attempt's marker: the lost attempt's worker is gone
      // (even one that died before this loop saw it start).
      const next = await readKey<RemoteStarted>(attemptKey(o.task.id, attempt + 1, "started.json"));
      if (next) {
        await emit();
        follow(attempt + 1);
        started = next;
        o.onAttempt?.(attempt, next);
      }
    }
    const result = await readJson<RemoteResult>("result.json");
    if (result) {
      // The winning attempt's log is the one `events` counts.
      if ((result.attempt ?? 1) !== attempt) follow(result.attempt ?? 1);
      await emit(result.events);
      peakRss = Math.max(peakRss, result.peakRss);
      return { kind: "result", result: { ...result, peakRss }, started, status, attempt };
    }
    const now = Date.now();
    if (endedAt !== null && now - endedAt > (o.endGraceMs ?? 3000)) {
      await emit();
      return { kind: "ended", status: status!, started, peakRss, attempt };
    }
    if (now >= nextStatus && endedAt === null) {
      try {
        const s = await o.launcher.status(o.job);
        statusErrors = 0;
        if (!status || s.label !== status.label) o.onStatus(s, started);
        if (s.phase === "ended") endedAt = Date.now();
        // Quick while it waits to start (the cell shows the queue), then gentler on the controller.
        if (status && s.phase === status.phase) statusMs = Math.min(maxStatusMs, statusMs * 1.5);
        status = s;
      } catch (e) {
        if (++statusErrors >= STATUS_ERRORS) throw e;
      }
      nextStatus = Date.now() + statusMs;
    }
    await sleep(tailMs, o.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

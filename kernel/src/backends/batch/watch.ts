/**
 * Follows a job through SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING →
 * SUCCEEDED/FAILED with DescribeJobs: polls every second while things move,
 * backs off (×1.5 up to a ceiling) while they don't, and keeps the time spent
 * in each state as the kernel saw it, for the cell.
 */
import type { JobDetail } from "@aws-sdk/client-batch";

export const FINAL_STATES = new Set(["SUCCEEDED", "FAILED"]);

export interface Transition {
  state: string;
  at: number;
}

function seconds(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} m`;
}

export class JobTimeline {
  readonly transitions: Transition[] = [];

  /** Records `state` if it differs from the last one; true when it did. */
  observe(state: string, at: number): boolean {
    const last = this.transitions[this.transitions.length - 1];
    if (last && last.state === state) return false;
    this.transitions.push({ state, at });
    return true;
  }

  get state(): string | undefined {
    return this.transitions[this.transitions.length - 1]?.state;
  }

  /** How long the job has been in its current state. */
  inState(now: number): number {
    const last = this.transitions[this.transitions.length - 1];
    return last ? now - last.at : 0;
  }

  /** `SUBMITTED 0.4 s → RUNNABLE 12 s → RUNNING 3.1 s` (a final state has no duration). */
  text(now: number): string {
    return this.transitions
      .map((t, i) => {
        const end = this.transitions[i + 1]?.at ?? (FINAL_STATES.has(t.state) ? undefined : now);
        return end === undefined ? t.state : `${t.state} ${seconds(end - t.at)}`;
      })
      .join(" → ");
  }
}

export interface WatchOptions {
  describe(): Promise<JobDetail | undefined>;
  /** Called after every poll. */
  onPoll(job: JobDetail | undefined, timeline: JobTimeline): void;
  /** Stop early (e.g. the worker's result arrived, or the cell was interrupted). */
  stopped(): boolean;
  /** Resolves when `stopped()` may have changed, to cut a pause short. */
  wake: { wait(ms: number): Promise<void> };
  minPollMs?: number;
  maxPollMs: number;
  now?: () => number;
}

/** Polls until the job is final or `stopped()`; returns the last description. */
export async function watchJob(o: WatchOptions): Promise<{ job: JobDetail | undefined; timeline: JobTimeline }> {
  const now = o.now ?? Date.now;
  const timeline = new JobTimeline();
  const min = o.minPollMs ?? 1000;
  let pause = min;
  let job: JobDetail | undefined;
  while (!o.stopped()) {
    job = await o.describe();
    const changed = job?.status ? timeline.observe(job.status, now()) : false;
    o.onPoll(job, timeline);
    if (job?.status && FINAL_STATES.has(job.status)) break;
    pause = changed ? min : Math.min(o.maxPollMs, Math.round(pause * 1.5));
    await o.wake.wait(pause);
  }
  return { job, timeline };
}

/** A pause that `poke()` ends early. */
export class Wake {
  private pending: (() => void) | null = null;

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.pending === done) self.pending = null;
        resolve();
      }
      this.pending = done;
    });
  }

  poke(): void {
    this.pending?.();
  }
}

/**
 * A job's way through SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING →
 * SUCCEEDED/FAILED, with the time spent in each state as the kernel saw it
 * (DescribeJobs polls), for the cell.
 */
/** TERMINATED is ours: the state a job is left in by an interrupt, as the cell shows it. */
export const FINAL_STATES = new Set(["SUCCEEDED", "FAILED", "TERMINATED"]);

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
    // A final state stays: a job we terminated may still be described as RUNNING for a moment.
    if (last && (last.state === state || FINAL_STATES.has(last.state))) return false;
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

  /** Each state with the time spent in it (the current one up to `now`; a final state has none). */
  states(now: number): Array<{ state: string; ms?: number }> {
    return this.transitions.map((t, i) => {
      const end = this.transitions[i + 1]?.at ?? (FINAL_STATES.has(t.state) ? undefined : now);
      return end === undefined ? { state: t.state } : { state: t.state, ms: end - t.at };
    });
  }

  /** When the job was first seen RUNNING, if it was. */
  get runningSince(): number | undefined {
    return this.transitions.find((t) => t.state === "RUNNING")?.at;
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

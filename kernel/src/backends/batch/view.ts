/**
 * What the cell shows of a Batch job while it runs: its state now and the
 * time spent in each (SUBMITTED → RUNNABLE → STARTING → RUNNING), and which
 * attempt of its retryStrategy is under way.
 *
 * Given a status to report to (a cell's tracked step: session/step-status.ts,
 * handed in by the caller) this goes into the step's status output: RUNNABLE
 * is "queued" there, not "running", and the run time counts from RUNNING.
 * Without one it is one text line, replaced in place.
 */
import type { JobDetail } from "@aws-sdk/client-batch";
import { display, type DisplayHandle } from "../../client/display";
import { FINAL_STATES, type JobTimeline } from "./watch";

/** What a job's state means for the step while it is not over. */
export type JobPhase = "queued" | "starting" | "running";

/** Where a job's progress goes when the caller tracks the step's status (a cell does). */
export interface JobStatusSink {
  update(patch: {
    state?: JobPhase;
    jobId?: string;
    job?: { system: string; state: string; states: Array<{ state: string; ms?: number }> };
    startedAt?: string;
    attempt?: number;
    retries?: number;
  }): void;
}

/** What a Batch state means for the step; final states are the dispatcher's to report. */
export function stepStateOf(batchState: string | undefined): JobPhase | undefined {
  switch (batchState) {
    case "SUBMITTED":
    case "PENDING":
    case "RUNNABLE":
      return "queued";
    case "STARTING":
      return "starting";
    case "RUNNING":
      return "running";
    default:
      return undefined;
  }
}

export class JobView {
  private jobId = "";
  private attempt = 1;
  private line: DisplayHandle | null = null;

  constructor(
    private readonly queue: string,
    private readonly maxAttempts: number,
    private readonly status: JobStatusSink | null = null,
  ) {}

  submitted(jobId: string, timeline: JobTimeline): void {
    this.jobId = jobId;
    this.show(timeline);
  }

  /** A retry's worker started. */
  retried(attempt: number, timeline: JobTimeline): void {
    this.attempt = Math.max(this.attempt, attempt);
    this.show(timeline);
  }

  show(timeline: JobTimeline, job?: JobDetail, extra = ""): void {
    // Batch counts its attempts too: a retry is under way before its worker writes a word.
    if (job?.attempts && job.status && !FINAL_STATES.has(job.status)) this.attempt = Math.max(this.attempt, job.attempts.length + 1);
    const now = Date.now();
    const tries = this.maxAttempts > 1 ? `, attempt ${this.attempt} of ${this.maxAttempts}` : "";
    if (!this.status) {
      this.line ??= display.create();
      this.line.text(`AWS Batch job ${this.jobId} (${this.queue}${tries}): ${timeline.text(now)}${extra}`);
      return;
    }
    const state = stepStateOf(timeline.state);
    const ran = timeline.runningSince;
    this.status.update({
      ...(state ? { state } : {}),
      jobId: this.jobId,
      job: { system: "AWS Batch", state: timeline.state ?? "SUBMITTED", states: timeline.states(now) },
      startedAt: ran !== undefined ? new Date(ran).toISOString() : undefined,
      ...(this.maxAttempts > 1 ? { attempt: this.attempt, retries: this.maxAttempts - 1 } : {}),
    });
  }
}

/** Said once when a job (or an array's child) stays RUNNABLE longer than NBSCALE_BATCH_RUNNABLE_HINT. */
export function runnableHint(jobId: string, queue: string, s: { cpu?: number; memory?: number; gpu?: number }): string {
  const asked = [s.cpu !== undefined && `${s.cpu} vCPU`, s.memory !== undefined && `${Math.ceil(s.memory / 2 ** 20)} MiB`, s.gpu && `${s.gpu} GPU`]
    .filter(Boolean)
    .join(", ");
  return (
    `hint: AWS Batch job ${jobId} is still RUNNABLE: no compute environment of queue \`${queue}\` has started an instance for it yet` +
    `${asked ? ` (it asks for ${asked})` : ""}. Common causes: the environment's maxvCpus is reached by other jobs, its instance types are smaller than the request, ` +
    "or spot capacity is short. `aws batch describe-compute-environments` shows the limits; interrupt the cell to terminate the job.\n"
  );
}

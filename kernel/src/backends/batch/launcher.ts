/**
 * AWS Batch as a launcher of the remote transport (backends/remote): submit
 * a job that runs `nbscale worker --task DATASTORE TASK`, describe it, and
 * terminate it. It never touches the task's data. Every DescribeJobs feeds
 * the job's timeline (the time spent in each state), which the cell shows.
 */
import {
  DescribeJobsCommand,
  SubmitJobCommand,
  TerminateJobCommand,
  type BatchClient,
  type JobDetail,
  type SubmitJobCommandInput,
} from "@aws-sdk/client-batch";
import type { Launcher, LaunchStatus, SubmittedTask } from "../remote/kernel-side";
import { FINAL_STATES, JobTimeline } from "./watch";

export interface BatchStatus extends LaunchStatus {
  /** The job as DescribeJobs last told; undefined when it didn't know it (yet). */
  job?: JobDetail;
}

const QUEUED = new Set(["SUBMITTED", "PENDING", "RUNNABLE", "STARTING"]);

export class BatchLauncher implements Launcher<string, BatchStatus> {
  readonly timeline = new JobTimeline();

  constructor(
    private readonly client: BatchClient,
    /** The SubmitJob request for a task. */
    private readonly request: (task: SubmittedTask) => SubmitJobCommandInput,
    /** After every DescribeJobs: the cell's live status. */
    private readonly onPoll: (status: BatchStatus, timeline: JobTimeline) => void,
  ) {}

  async submit(task: SubmittedTask): Promise<string> {
    const r = await this.client.send(new SubmitJobCommand(this.request(task)));
    this.timeline.observe("SUBMITTED", Date.now());
    return r.jobId!;
  }

  async status(jobId: string): Promise<BatchStatus> {
    const job = (await this.client.send(new DescribeJobsCommand({ jobs: [jobId] }))).jobs?.[0];
    const state = job?.status ?? "SUBMITTED";
    this.timeline.observe(state, Date.now());
    const s: BatchStatus = {
      phase: FINAL_STATES.has(state) ? "ended" : QUEUED.has(state) ? "queued" : "running",
      // watchTask reports a status when its label changes: one report per state.
      label: state,
      job,
    };
    this.onPoll(s, this.timeline);
    return s;
  }

  async cancel(jobId: string): Promise<void> {
    // TerminateJob stops a job in any state (CancelJob only before it starts).
    await this.client.send(new TerminateJobCommand({ jobId, reason: "interrupted from the notebook (nbscale)" }));
    this.timeline.observe("TERMINATED", Date.now());
  }
}

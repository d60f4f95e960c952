/** A Batch step that did not run, or ended in a way only its message can describe. */
import type { StepFailure } from "../step-failure";

export class BatchStepError extends Error {
  constructor(
    readonly failure: StepFailure,
    /** The job, when one was submitted. */
    readonly jobId?: string,
  ) {
    super(failure.message);
    this.name = "BatchStepError";
  }
}

/** A Batch step that did not run, or ended in a way only its message can describe. */
import type { StepFailure } from "../step-failure";
import { StepFailed } from "../step-backend";

export class BatchStepError extends StepFailed {
  constructor(failure: StepFailure, jobId?: string) {
    super(failure, jobId);
    this.name = "BatchStepError";
  }
}

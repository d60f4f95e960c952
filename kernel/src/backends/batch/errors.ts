/** A Batch step that did not run, or ended in a way only its message can describe. */
import type { CellError } from "../../session/errors";

export class BatchStepError extends Error {
  constructor(
    readonly cellError: CellError,
    /** The job, when one was submitted. */
    readonly jobId?: string,
  ) {
    super(cellError.evalue);
    this.name = "BatchStepError";
  }
}

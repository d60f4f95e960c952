/** How a step whose `Lazy` input a job cannot read is refused, before anything is submitted. */
import { notStarted, type StepFailure } from "../step-failure";
import type { UnreachableLazyInput } from "../../worker/remote/values";

/** A Lazy input the job can't read, as the cell shows it: where it is, where the job reads, and the two ways out. */
export function lazyInputError(step: string, e: UnreachableLazyInput, scheduler: string): StepFailure {
  const fix = e.missing
    ? `re-run the step that made \`${e.input}\`, or load it into the kernel first if it fits`
    : `re-run the step that made \`${e.input}\` with NBSCALE_DATASTORE=${e.datastore} set when the kernel starts, so it is kept where jobs read, ` +
      `or load it into the kernel first (\`const v = await ${e.input}.load()\`) if it fits`;
  return notStarted("LazyInput", `step \`${step}\` was not sent to ${scheduler}: ${e.message}`, [`${fix}; nothing was submitted`]);
}

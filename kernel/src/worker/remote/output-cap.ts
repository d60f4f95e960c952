/**
 * How much of a remote step's printed output travels through the datastore.
 *
 * Every shipped byte is an event chunk in the datastore (an S3 PUT on
 * Batch), and the kernel records a step's log only up to NBSCALE_LOG_BYTES
 * (256 MiB by default) anyway. Past that many bytes a job stops shipping
 * its output: one note, shipped, says how much and where the rest went —
 * the job's own stdout/stderr (Slurm's output file, Batch's CloudWatch log
 * stream), which the scheduler keeps.
 */
import { logLimit } from "../log-limit";
import { formatMB } from "../../magics/units";

type StreamName = "stdout" | "stderr";

export class ShippedOutput {
  private shipped = 0;
  private noted = false;

  constructor(
    private readonly ship: (name: StreamName, text: string) => void,
    readonly limit = logLimit(process.env),
  ) {}

  /**
   * Ships `text`, or as much of it as fits under the limit; returns the part
   * that was not shipped ("" when all was), for the job's own stream.
   */
  offer(name: StreamName, text: string): string {
    let rest = text;
    if (this.shipped < this.limit) {
      const room = this.limit - this.shipped;
      const size = Buffer.byteLength(text);
      if (size <= room) {
        this.shipped += size;
        this.ship(name, text);
        return "";
      }
      // Cut so the shipped log stops at the limit, on a character boundary.
      const bytes = Buffer.from(text);
      let cut = room;
      while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
      const head = bytes.subarray(0, cut).toString("utf8");
      rest = bytes.subarray(cut).toString("utf8");
      this.shipped = this.limit;
      if (head) this.ship(name, head);
    }
    if (!this.noted) {
      this.noted = true;
      this.ship(
        "stderr",
        `\n[nbscale] this step printed more than ${formatMB(this.limit)} (NBSCALE_LOG_BYTES); the rest is not sent ` +
          `through the datastore but is in the job's own output (Slurm: the job's output file; AWS Batch: its CloudWatch log stream)\n`,
      );
    }
    return rest;
  }
}

/**
 * A remote job's memory as its worker sees it: sampled while the step runs
 * and reported through the event log whenever it grows by 5%, so that a job
 * the scheduler kills for memory can still say how much it used.
 */
import type { RemoteRecord } from "./protocol";

const SAMPLE_MS = 500;

export class PeakRss {
  private peak = process.memoryUsage.rss();
  private readonly timer: NodeJS.Timeout;

  constructor(push: (record: RemoteRecord) => void) {
    this.timer = setInterval(() => {
      const rss = process.memoryUsage.rss();
      // Only news worth a line: 5% more than said before.
      if (rss > this.peak * 1.05) push({ type: "usage", peakRss: (this.peak = rss) });
    }, SAMPLE_MS);
    this.timer.unref();
  }

  /** Stops sampling; the highest resident size seen, now included. */
  stop(): number {
    clearInterval(this.timer);
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
    return this.peak;
  }
}

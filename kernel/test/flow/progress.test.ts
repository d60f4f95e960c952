/** What `nbscale run` draws on a terminal while remote jobs queue and run. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { jobSummary, PlainProgress, TtyProgress } from "../../src/flow/progress";
import type { JobState } from "../../src/flow/pool";
import type { StepRecord } from "../../src/store/runs";

class Screen extends Writable {
  text = "";
  columns = 120;
  _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
  /** The last live block drawn (after the last cursor-up), without escape codes. */
  lastBlock(): string[] {
    /* eslint-disable no-control-regex -- a terminal's escape sequences are what these read */
    const frames = this.text.split(/\u001b\[\d+A/);
    return frames[frames.length - 1]
      .replace(/\u001b\[2K/g, "")
      .split("\n")
      .filter((l) => l.trim());
    /* eslint-enable no-control-regex */
  }
}

const rec = (step: string): StepRecord => ({ step, status: "succeeded", executed: true }) as unknown as StepRecord;

test("a terminal run shows a remote step's job state on its live line, and foreach items' jobs as counts per phase", () => {
  const out = new Screen();
  const p = new TtyProgress(out);
  p.begin("run-1", "flow.ts", 2);
  p.started("train");
  p.jobState("train", null, { phase: "submitted", text: "Slurm job 12: submitted" });
  assert.match(out.lastBlock().join("\n"), /▸ train +\d+\.\ds +Slurm job 12: submitted/);
  p.jobState("train", null, { phase: "queued", text: "Slurm job 12: PENDING (Priority)" });
  assert.match(out.lastBlock().join("\n"), /▸ train .*Slurm job 12: PENDING \(Priority\)/);
  p.jobState("train", null, { phase: "running", text: "Slurm job 12: RUNNING on localhost" });
  assert.match(out.lastBlock().join("\n"), /▸ train .*RUNNING on localhost/);

  p.started("score");
  p.items("score", 0, 4);
  for (let i = 0; i < 4; i++) p.jobState("score", i, { phase: "submitted", text: `Slurm job 13_${i}: submitted` });
  p.jobState("score", 0, { phase: "running", text: "Slurm job 13_0: RUNNING" });
  p.jobState("score", 1, { phase: "running", text: "Slurm job 13_1: RUNNING" });
  const block = out.lastBlock().join("\n");
  assert.match(block, /▸ score .*\[\.+\] 0\/4 +2 running · 2 queued/);
  assert.match(block, /▸ train .*RUNNING on localhost/, "both live lines are drawn");
  p.jobState("score", 0, { phase: "ended", text: "Slurm job 13_0: COMPLETED" });
  p.items("score", 1, 4);
  assert.match(out.lastBlock().join("\n"), /1\/4 +1 running · 2 queued/);
  p.finished("train", rec("train"), 2000);
  assert.ok(!out.lastBlock().some((l) => l.includes("▸ train")), "a finished step leaves the live block");
  p.end({ run: "run-1", status: "succeeded", steps: {} } as never);
});

test("jobSummary: one job's own words; items' jobs counted by phase, submitted counting as queued", () => {
  const jobs = new Map<number | null, JobState>([[null, { phase: "queued", text: "AWS Batch job ab12: RUNNABLE" }]]);
  assert.equal(jobSummary(jobs), "AWS Batch job ab12: RUNNABLE");
  const items = new Map<number | null, JobState>([
    [0, { phase: "submitted", text: "" }],
    [1, { phase: "queued", text: "" }],
    [2, { phase: "running", text: "" }],
  ]);
  assert.equal(jobSummary(items), "1 running · 2 queued");
  assert.equal(jobSummary(new Map()), "");
});

test("plain output (CI logs) is not changed by job states: they are already among the step's output lines", () => {
  const out = new Screen();
  const p = new PlainProgress(out);
  p.begin("run-1", "flow.ts", 1);
  p.started("train");
  p.jobState("train", null, { phase: "running", text: "Slurm job 12: RUNNING" });
  p.output("train", "[nbscale] Slurm job 12: RUNNING\n");
  assert.equal(out.text, "run run-1: 1 step of flow.ts\nstarted  train\n  train | [nbscale] Slurm job 12: RUNNING\n");
});

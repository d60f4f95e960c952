import { existsSync } from "node:fs";
import { CliCommand, UsageError } from "../command";
import { ProcessLauncher } from "../../flow/pool";
import { wantsLocalWorker } from "../run-targets";
import type { Target } from "../../flow/api";

const usage = `Usage: nbscale resume RUN_ID [options]

Continues a failed or interrupted run as a new run of the same flow file
(as it is now, so fix the failing step first). Re-runs the failed step (or
STEP with --from) and every step downstream of it. Every other step whose
code and inputs are unchanged (same SHA-256s) is reused without running
("executed": false); one you edited is detected and runs again.

Options:
  --from STEP        re-run from STEP (and everything downstream); needed to
                     re-run part of a run that succeeded
  --on TARGET        as for \`nbscale run\`
  --max-workers N    as for \`nbscale run\`
  --json             last line of stdout: the same object as \`nbscale run --json\`
  --datastore DIR    datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

const resume: CliCommand = {
  name: "resume",
  summary: "Resume a failed run, reusing unchanged steps",
  usage,
  run: async (argv, io) => {
    // As in `nbscale run`: the first worker boots while the rest loads.
    const launcher = new ProcessLauncher({ warm: wantsLocalWorker(argv) ? 1 : 0 });
    try {
      return await resumeWith(argv, io, launcher);
    } finally {
      launcher.close();
    }
  },
};

async function resumeWith(argv: string[], io: Parameters<CliCommand["run"]>[1], launcher: ProcessLauncher): Promise<number> {
  const { parseArgs, positiveInt, runCommand, stringFlag, writeJson } = await import("../support");
  const { resolveDatastore } = await import("../../store/location");
  const { Datastore } = await import("../../store/datastore");
  const { RunStore } = await import("../../store/runs");
  const { runFlow, RunSetupError } = await import("../../flow/runner");
  const { progressFor } = await import("../../flow/progress");
  const { FlowLoadError } = await import("../../flow/load");
  const { stepsToResume } = await import("../../flow/plan");
  const { jsonResult, reportFailures } = await import("../run-result");
  return runCommand("resume", usage, argv, io, async () => {
    const args = parseArgs("resume", argv, { booleans: ["json"], values: ["from", "on", "max-workers", "datastore"] });
    if (args.positional.length !== 1) throw new UsageError("nbscale resume: expected one run id (see `nbscale runs`)");
    const loc = resolveDatastore({ flag: stringFlag(args, "datastore"), env: io.env, cwd: io.cwd });
    const ds = await Datastore.open(loc);
    const previous = await new RunStore(ds.backend).get(args.positional[0]);
    const order = previous.start.steps.map((s) => s.name);
    const from = stringFlag(args, "from");
    let force: string[];
    if (from !== undefined) {
      if (!order.includes(from)) {
        throw new UsageError(`nbscale resume: --from ${from}: run ${previous.id} has no step ${from}; its steps: ${order.join(", ")}`);
      }
      force = [from];
    } else if (previous.status === "succeeded") {
      throw new UsageError(
        `nbscale resume: run ${previous.id} succeeded; there is nothing to resume. ` +
          `To re-run part of it, pass --from STEP (steps: ${order.join(", ")}), or start a new run with \`nbscale run\`.`,
      );
    } else if (previous.status === "running") {
      throw new UsageError(`nbscale resume: run ${previous.id} is still running (pid ${previous.start.runner.pid}); wait for it to finish`);
    } else {
      force = stepsToResume(order, previous.steps).filter((s) => previous.steps[s]?.status === "failed");
    }
    if (!existsSync(previous.start.flow.path)) {
      throw new UsageError(`nbscale resume: the flow file of run ${previous.id}, ${previous.start.flow.path}, is gone`);
    }
    const on = stringFlag(args, "on");
    const json = args.flags.has("json");
    try {
      const result = await runFlow({
        flowFile: previous.start.flow.path,
        datastore: loc,
        on: (on as Target | undefined) ?? (previous.start.options.on as Target | null),
        maxWorkers: positiveInt("resume", "max-workers", stringFlag(args, "max-workers")) ?? null,
        progress: progressFor(json ? io.stderr : io.stdout),
        resume: { previous, force },
        launcher,
      });
      reportFailures("resume", result, io);
      if (json) writeJson(io, jsonResult(result));
      return result.status === "succeeded" ? 0 : 1;
    } catch (e) {
      if (e instanceof FlowLoadError || e instanceof RunSetupError) {
        io.stderr.write(`nbscale resume: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  });
}

export default resume;

import { CliCommand, UsageError } from "../command";
import { duration, openStore, parseArgs, runCommand, shortTime, table, writeJson } from "../support";
import { RunStore, RunView } from "../../store/runs";

const usage = `Usage: nbscale runs [options]

Lists flow runs, newest first: id, status, flow, steps run/reused/failed, time.

Options:
  --json            last line of stdout: {"runs": [{"run", "status", "flow",
                    "started", "finished", "resumed_from", "steps": {STEP:
                    {"status", "executed", "artifacts"}}}]}
  --datastore DIR   datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

export function runSummary(r: RunView): Record<string, unknown> {
  return {
    run: r.id,
    status: r.status,
    flow: r.start.flow.path,
    started: r.start.started,
    finished: r.end?.finished ?? null,
    resumed_from: r.start.resumed_from,
    steps: Object.fromEntries(
      r.start.steps
        .filter((s) => r.steps[s.name])
        .map((s) => {
          const rec = r.steps[s.name];
          return [s.name, { status: rec.status, executed: rec.executed, artifacts: rec.artifacts }];
        }),
    ),
  };
}

const runs: CliCommand = {
  name: "runs",
  summary: "List flow runs",
  usage,
  run: (argv, io) =>
    runCommand("runs", usage, argv, io, async () => {
      const args = parseArgs("runs", argv, { booleans: ["json"], values: ["datastore"] });
      if (args.positional.length > 0) throw new UsageError("nbscale runs: takes no arguments (use `nbscale show RUN` for one run)");
      const ds = await openStore(args, io);
      const list = (await new RunStore(ds.backend).list()).reverse();
      if (args.flags.has("json")) {
        writeJson(io, { runs: list.map(runSummary) });
        return 0;
      }
      if (list.length === 0) {
        io.stdout.write("No runs yet. Export a notebook with `nbscale export NB.ipynb`, then `nbscale run FLOW.ts`.\n");
        return 0;
      }
      const rows = list.map((r) => {
        const recs = Object.values(r.steps);
        const count = (f: (s: (typeof recs)[number]) => boolean) => recs.filter(f).length;
        const steps = `${count((s) => s.executed && s.status === "succeeded")} ran, ${count((s) => !s.executed && s.status === "succeeded")} reused, ${count((s) => s.status === "failed")} failed`;
        return [r.id, r.status, r.start.flow.path, steps, shortTime(r.start.started), r.end ? duration(r.start.started, r.end.finished) : "-"];
      });
      io.stdout.write(table(["RUN", "STATUS", "FLOW", "STEPS", "STARTED", "TOOK"], rows));
      return 0;
    }),
};

export default runs;

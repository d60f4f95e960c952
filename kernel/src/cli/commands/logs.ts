import { CliCommand, UsageError } from "../command";
import { openStore, parseArgs, runCommand, writeJson } from "../../store/cli-support";
import { RunStore } from "../../store/runs";
import { StoreError } from "../../store/errors";

const usage = `Usage: nbscale logs RUN_ID/STEP [options]

Prints the output (stdout and stderr, as they came) of one step of a flow run.
For a step reused from an earlier run, that run's log.

Options:
  --json            last line of stdout: {"run", "step", "status", "log"}
  --datastore DIR   datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

const logs: CliCommand = {
  name: "logs",
  summary: "Print the log of one step of a run",
  usage,
  run: (argv, io) =>
    runCommand("logs", usage, argv, io, async () => {
      const args = parseArgs("logs", argv, { booleans: ["json"], values: ["datastore"] });
      const spec = args.positional[0];
      if (args.positional.length !== 1 || !spec.includes("/")) {
        throw new UsageError("nbscale logs: expected RUN_ID/STEP, e.g. nbscale logs run-20250102T030405-1a2b3c/train");
      }
      const at = spec.indexOf("/");
      const [runId, step] = [spec.slice(0, at), spec.slice(at + 1)];
      const ds = await openStore(args, io);
      const run = await new RunStore(ds.backend).get(runId);
      const rec = run.steps[step];
      if (!rec) {
        const known = run.start.steps.map((s) => s.name);
        if (known.includes(step)) throw new StoreError(`step ${step} of run ${run.id} has not finished (or never started); no log yet`);
        throw new StoreError(`run ${run.id} has no step ${step}; its steps: ${known.join(", ")}`);
      }
      const text = rec.log ? await new RunStore(ds.backend).readLog(rec.log, `log of ${run.id}/${step}`) : "";
      if (args.flags.has("json")) {
        writeJson(io, { run: run.id, step, status: rec.status, log: text });
        return 0;
      }
      if (!rec.executed && rec.reused_from) io.stderr.write(`(step ${step} was reused from run ${rec.reused_from}; this is that run's log)\n`);
      if (!rec.log) io.stderr.write(`(step ${step} did not run: ${rec.error?.message ?? "no log"})\n`);
      io.stdout.write(text);
      return 0;
    }),
};

export default logs;

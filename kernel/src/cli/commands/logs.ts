import { CliCommand, UsageError, type CliIO } from "../command";
import { openStore, parseArgs, runCommand, writeJson, type ParsedArgs } from "../support";
import { RunStore } from "../../store/runs";
import { StoreError } from "../../store/errors";

const usage = `Usage: nbscale logs RUN_ID/STEP [options]
       nbscale logs EXECUTION_ID [options]

RUN_ID/STEP: the output (stdout and stderr, as they came) of one step of a
flow run; for a step reused from an earlier run, that run's log.
EXECUTION_ID (from \`nbscale history\`, or a unique prefix or suffix of one):
the whole recorded output of one notebook cell or step, including what the
cell did not show; its stdout goes to stdout, its stderr to stderr.

Options:
  --json            last line of stdout: {"run", "step", "status", "log"}
                    (for an execution: {"execution", "status", "stdout", "stderr"})
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
      if (args.positional.length !== 1) {
        throw new UsageError(
          "nbscale logs: expected RUN_ID/STEP (e.g. nbscale logs run-20250102T030405-1a2b3c/train) or an execution id from `nbscale history`",
        );
      }
      if (!spec.includes("/")) return await executionLogs(spec, args, io);
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

async function executionLogs(id: string, args: ParsedArgs, io: CliIO): Promise<number> {
  const ds = await openStore(args, io);
  const rec = await ds.executions.find(id);
  const stdout = await ds.executions.readLog(rec.stdout, `stdout of execution ${rec.id}`);
  const stderr = await ds.executions.readLog(rec.stderr, `stderr of execution ${rec.id}`);
  if (args.flags.has("json")) {
    writeJson(io, { execution: rec.id, status: rec.status, stdout, stderr });
    return 0;
  }
  io.stdout.write(stdout);
  io.stderr.write(stderr);
  return 0;
}

export default logs;

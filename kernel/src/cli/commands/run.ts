import { resolve } from "node:path";
import { CliCommand, UsageError } from "../command";
import { ProcessLauncher } from "../../flow/pool";
import { wantsLocalWorker } from "../run-targets";
import type { Target } from "../../flow/api";

const TARGETS = ["local", "kernel", "batch", "slurm"];

const usage = `Usage: nbscale run FLOW.ts [options]

Runs an exported flow (see \`nbscale export\`) with no notebook and no kernel.
Independent steps run in parallel, each in a worker process; every step's
artifacts are recorded in the datastore with their SHA-256. Exits non-zero
when a step fails; \`nbscale resume RUN\` then continues without redoing
finished steps.

Options:
  --on TARGET        run every step on TARGET (local, kernel, batch, slurm);
                     default: each step's own \`on\`, else local
  --max-workers N    at most N steps (or foreach items) at once (default: CPU count)
  --json             last line of stdout: {"run", "status", "steps": {STEP:
                     {"status", "executed", "artifacts": {NAME: SHA256}}}}
  --datastore DIR    datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)

Steps run on worker processes started once for the run and reused from step
to step (each step evaluates the flow afresh). The compiled flow is cached by
the SHA-256 of its source in $NBSCALE_CACHE_DIR (default $XDG_CACHE_HOME/nbscale,
else ~/.cache/nbscale), so an unchanged flow is not compiled again.
`;

const run: CliCommand = {
  name: "run",
  summary: "Run an exported flow headlessly",
  usage,
  run: async (argv, io) => {
    // The first worker boots while the rest of the command loads: a worker
    // start is the longest wait of a small run.
    const launcher = new ProcessLauncher({ warm: wantsLocalWorker(argv) ? 1 : 0 });
    try {
      return await runWith(argv, io, launcher);
    } finally {
      launcher.close();
    }
  },
};

async function runWith(argv: string[], io: Parameters<CliCommand["run"]>[1], launcher: ProcessLauncher): Promise<number> {
  const { parseArgs, positiveInt, runCommand, stringFlag, writeJson } = await import("../support");
  const { resolveDatastore } = await import("../../store/location");
  const { runFlow, RunSetupError } = await import("../../flow/runner");
  const { progressFor } = await import("../../flow/progress");
  const { FlowLoadError } = await import("../../flow/load");
  const { jsonResult, reportFailures } = await import("../run-result");
  return runCommand("run", usage, argv, io, async () => {
    const args = parseArgs("run", argv, { booleans: ["json"], values: ["on", "max-workers", "datastore"] });
    if (args.positional.length !== 1) throw new UsageError("nbscale run: expected one flow file, e.g. nbscale run flow.ts");
    const on = stringFlag(args, "on");
    if (on !== undefined && !TARGETS.includes(on)) throw new UsageError(`nbscale run: --on ${on}: expected one of ${TARGETS.join(", ")}`);
    const json = args.flags.has("json");
    try {
      const result = await runFlow({
        flowFile: resolve(io.cwd, args.positional[0]),
        datastore: resolveDatastore({ flag: stringFlag(args, "datastore"), env: io.env, cwd: io.cwd }),
        on: (on as Target | undefined) ?? null,
        maxWorkers: positiveInt("run", "max-workers", stringFlag(args, "max-workers")) ?? null,
        // With --json, stdout ends with the JSON line; progress goes to stderr.
        progress: progressFor(json ? io.stderr : io.stdout),
        launcher,
      });
      reportFailures("run", result, io);
      if (json) writeJson(io, jsonResult(result));
      return result.status === "succeeded" ? 0 : 1;
    } catch (e) {
      if (e instanceof FlowLoadError || e instanceof RunSetupError) {
        io.stderr.write(`nbscale run: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  });
}

export default run;

import { CliCommand, UsageError } from "../command";
import { parseArgs, runCommand, stringFlag, writeJson } from "../support";
import { ExportError } from "../../flow/export";
import { exportNotebookFile } from "../../flow/export-file";

const usage = `Usage: nbscale export NOTEBOOK.ipynb [-o FLOW.ts] [options]

Turns a notebook into a TypeScript flow file that \`nbscale run\` runs
headlessly and \`nbscale resume\` resumes. One step per code cell (named by
its %%step line, else after the first value it declares, else cell_N), with
its %%step options; cells that only declare functions, classes or types
become shared code at the top of the file. Each step's inputs are the values
it reads from earlier cells, so independent cells run in parallel.

Options:
  -o, --output FLOW.ts  where to write (default: NOTEBOOK.flow.ts next to the notebook)
  --json                last line of stdout: {"path", "flow", "steps": [{"name",
                        "cell", "needs", "inputs", "outputs"}], "shared", "warnings"}
`;

const exportCommand: CliCommand = {
  name: "export",
  summary: "Export a notebook to a flow file",
  usage,
  run: (argv, io) =>
    runCommand("export", usage, argv, io, async () => {
      const args = parseArgs("export", argv, { booleans: ["json"], values: ["output"], aliases: { o: "output" } });
      if (args.positional.length !== 1) throw new UsageError("nbscale export: expected one notebook, e.g. nbscale export analysis.ipynb -o flow.ts");
      try {
        const r = exportNotebookFile(args.positional[0], stringFlag(args, "output"), io.cwd);
        for (const w of r.warnings) io.stderr.write(`warning: cell ${w.cell}: ${w.message}\n`);
        if (args.flags.has("json")) {
          writeJson(io, { path: r.path, flow: r.flowName, steps: r.steps, shared: r.shared, warnings: r.warnings });
        } else {
          io.stdout.write(`${r.path}\n`);
          io.stderr.write(
            `${r.steps.length} step${r.steps.length === 1 ? "" : "s"}: ${r.steps.map((s) => s.name + (s.needs.length ? ` (needs ${s.needs.join(", ")})` : "")).join(", ")}\n`,
          );
        }
        return 0;
      } catch (e) {
        if (e instanceof ExportError) {
          io.stderr.write(
            `nbscale export: cannot export ${args.positional[0]}:\n${e.message
              .split("\n")
              .map((l) => `  ${l}`)
              .join("\n")}\n`,
          );
          return 1;
        }
        throw e;
      }
    }),
};

export default exportCommand;

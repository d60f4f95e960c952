import { resolve } from "node:path";
import { CliCommand, UsageError } from "../command";
import { duration, formatBytes, openStore, parseArgs, positiveInt, runCommand, shortTime, stringFlag, table, writeJson } from "../support";
import { checkName } from "../../store/artifacts";
import { summarize } from "../../store/executions";

const usage = `Usage: nbscale history [NAME] [options]

Lists recorded cell executions, newest first. With NAME, lists the versions
of that variable (when, by which cell, size, hash) and, with --json, the
executions that read or wrote it.

Options:
  --notebook PATH   only executions of this notebook
  --cell ID         only executions of this cell
  --limit N         at most N executions (default 20 in the table, all with --json)
  --json            last line of stdout: {"executions": [...]}
  --datastore DIR   datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

const history: CliCommand = {
  name: "history",
  summary: "List recorded cell executions (or the versions of one variable)",
  usage,
  run: (argv, io) =>
    runCommand("history", usage, argv, io, async () => {
      const args = parseArgs("history", argv, { booleans: ["json"], values: ["notebook", "cell", "limit", "datastore"] });
      if (args.positional.length > 1) throw new UsageError(`nbscale history: expected at most one NAME, got ${args.positional.join(" ")}`);
      const name = args.positional[0];
      if (name !== undefined) checkName(name);
      const json = args.flags.has("json");
      const nb = stringFlag(args, "notebook");
      const notebook = nb === undefined ? undefined : resolve(io.cwd, nb);
      const limit = positiveInt("history", "limit", stringFlag(args, "limit")) ?? (json ? undefined : 20);
      const ds = await openStore(args, io);
      // A notebook renamed in JupyterLab keeps its history (store/notebooks.ts).
      const lineage = notebook === undefined ? undefined : await ds.notebooks.lineage(notebook);
      const records = await ds.history({
        ...(lineage !== undefined ? { notebook: lineage } : {}),
        ...(stringFlag(args, "cell") !== undefined ? { cell: stringFlag(args, "cell") } : {}),
        ...(name !== undefined ? { variable: name } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
      if (json) {
        writeJson(io, { executions: records.map(summarize) });
        return 0;
      }
      if (name !== undefined) {
        const versions = await ds.versions(name, lineage !== undefined ? { notebook: lineage } : {});
        if (versions.length === 0) await ds.resolve(name); // throws the "did you mean" error
        io.stdout.write(
          table(
            ["VERSION", "CREATED", "CELL", "TYPE", "SIZE", "SHA256", "EXECUTION"],
            versions
              .slice()
              .reverse()
              .map((v) => [
                `${v.name}@${v.version}`,
                shortTime(v.created),
                v.cell ?? "-",
                v.type,
                formatBytes(v.size),
                v.sha256.slice(0, 12),
                v.execution ?? "-",
              ]),
          ),
        );
        return 0;
      }
      if (records.length === 0) {
        io.stdout.write("No executions recorded yet.\n");
        return 0;
      }
      io.stdout.write(
        table(
          ["ID", "CELL", "STATUS", "TARGET", "STARTED", "TOOK", "OUTPUTS"],
          records.map((r) => [
            r.id,
            r.cell.length > 16 ? r.cell.slice(0, 15) + "…" : r.cell,
            r.status,
            r.target,
            shortTime(r.started),
            duration(r.started, r.finished),
            Object.entries(r.outputs)
              .map(([n, o]) => `${n}@${o.version}`)
              .join(" ") || "-",
          ]),
        ),
      );
      return 0;
    }),
};

export default history;

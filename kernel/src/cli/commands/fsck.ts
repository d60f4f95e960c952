import { CliCommand, UsageError } from "../command";
import { formatBytes, parseArgs, parseDuration, runCommand, stringFlag, writeJson } from "../support";
import { backendFor } from "../../store/backends";
import { DEFAULT_GRACE_MS, fsck as check } from "../../store/fsck";
import { resolveDatastore } from "../../store/location";
import { DatastoreConfigError } from "../../store/errors";

const usage = `Usage: nbscale fsck [options]

Checks the datastore: every blob against its SHA-256, every committed
execution's blobs and versions, every version record against its execution.
Lists leftovers of interrupted writes (temp files, versions of executions that
never committed). Exit code 0 when the datastore is consistent, 1 when not.

Options:
  --clean           remove leftovers whose writer is gone or that are older than
                    the grace period. A writer still running on this host keeps
                    its leftovers; one on another host is fenced first (it then
                    records again under a new id), so nothing removed is ever
                    committed
  --grace DURATION  grace period for --clean, e.g. 10m, 2h (default 1h)
  --no-verify       skip re-hashing blobs (only check references)
  --json            last line of stdout: the result as one JSON object
  --datastore DIR   datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

const fsck: CliCommand = {
  name: "fsck",
  summary: "Check the datastore's integrity; list or clean leftovers",
  usage,
  run: (argv, io) =>
    runCommand("fsck", usage, argv, io, async () => {
      const args = parseArgs("fsck", argv, { booleans: ["json", "clean", "no-verify"], values: ["grace", "datastore"] });
      if (args.positional.length > 0) throw new UsageError(`nbscale fsck: unexpected argument ${args.positional[0]}`);
      const grace = stringFlag(args, "grace");
      const loc = resolveDatastore({ flag: stringFlag(args, "datastore"), env: io.env, cwd: io.cwd });
      const backend = backendFor(loc);
      if (!(await backend.exists())) throw new DatastoreConfigError(`No datastore at ${loc.path}. Pass --datastore DIR or set NBSCALE_DATASTORE.`);
      const result = await check(backend, {
        clean: args.flags.has("clean"),
        graceMs: grace !== undefined ? parseDuration("fsck", "grace", grace) : DEFAULT_GRACE_MS,
        verifyBlobs: !args.flags.has("no-verify"),
      });
      if (args.flags.has("json")) {
        writeJson(io, result);
        return result.consistent ? 0 : 1;
      }
      const c = result.checked;
      const out: string[] = [
        `datastore ${result.location}`,
        `checked ${c.executions} executions, ${c.versions} versions, ${c.blobs} blobs (${formatBytes(c.blob_bytes)})` +
          (c.abandoned > 0 ? `; ${c.abandoned} abandoned execution(s) fenced off` : ""),
      ];
      for (const p of result.problems) out.push(`PROBLEM ${p.kind}: ${p.message}`);
      for (const l of result.leftovers) {
        const state = l.removed ? "removed" : l.removable ? "removable with --clean" : "kept (writer may be live)";
        out.push(`leftover ${l.kind} ${l.id} (${formatBytes(l.size)}, ${l.age_seconds}s old, writer ${l.writer}): ${state}`);
      }
      out.push(result.consistent ? "consistent" : `INCONSISTENT: ${result.problems.length} problem(s)`);
      io.stdout.write(out.join("\n") + "\n");
      return result.consistent ? 0 : 1;
    }),
};

export default fsck;

import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { CliCommand, CliIO, UsageError } from "../command";
import { formatBytes, openStore, ParsedArgs, parseArgs, render, runCommand, shortTime, stringFlag, table, writeJson } from "../support";
import { toJsonForm } from "../../store/json-form";
import { Decoded } from "../../store/serialize";

const usage = `Usage: nbscale artifact get NAME[@VERSION] [options]
       nbscale artifact list [options]

get   Reads one version of a variable (the latest without @VERSION), verifying
      its SHA-256, and prints it.
list  Lists every recorded variable with its latest version.

Options:
  --json            get: last line {"name", "version", "sha256", "value"} (value
                    as JSON where it has a JSON form, null otherwise; notes on
                    stderr). list: {"artifacts": [...]}
  -o, --output FILE get: write the value's raw bytes (typed arrays, Buffers,
                    ArrayBuffers), text (strings, function source) to FILE
  --blob            with -o: write the stored, verified serialized bytes instead
  --notebook PATH   only versions recorded by this notebook
  --datastore DIR   datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

const artifact: CliCommand = {
  name: "artifact",
  summary: "Read a recorded variable version (artifact get NAME[@VERSION]) or list variables",
  usage,
  run: (argv, io) =>
    runCommand("artifact", usage, argv, io, async () => {
      const args = parseArgs("artifact", argv, {
        booleans: ["json", "blob"],
        values: ["output", "notebook", "datastore"],
        aliases: { o: "output" },
      });
      const [sub, ...rest] = args.positional;
      if (sub === "get") {
        if (rest.length !== 1) throw new UsageError("nbscale artifact get: expected one NAME[@VERSION]");
        return get(rest[0], args, io);
      }
      if (sub === "list") {
        if (rest.length !== 0) throw new UsageError("nbscale artifact list: takes no arguments");
        return list(args, io);
      }
      throw new UsageError(
        sub === undefined
          ? "nbscale artifact: expected a sub-command: get NAME[@VERSION] or list"
          : `nbscale artifact: unknown sub-command ${JSON.stringify(sub)}; use get or list`,
      );
    }),
};

async function get(spec: string, args: ParsedArgs, io: CliIO): Promise<number> {
  const ds = await openStore(args, io);
  const nb = stringFlag(args, "notebook");
  const filter = nb !== undefined ? { notebook: resolve(io.cwd, nb) } : {};
  const record = await ds.resolve(spec, filter);
  const label = `${record.name}@${record.version}`;
  const output = stringFlag(args, "output");
  if (args.flags.has("blob")) {
    if (output === undefined) throw new UsageError("nbscale artifact get: --blob needs -o FILE");
    await writeFile(resolve(io.cwd, output), await ds.blobs.read(record.sha256, label));
    io.stderr.write(`wrote ${label} serialized bytes (${formatBytes(record.size)}, sha256:${record.sha256}) to ${output}\n`);
    if (args.flags.has("json")) writeJson(io, { name: record.name, version: record.version, sha256: record.sha256, value: null });
    return 0;
  }
  const decoded = await ds.artifacts.load(record);
  if (output !== undefined) {
    const bytes = rawBytes(decoded);
    if (!bytes) {
      throw new UsageError(
        `nbscale artifact get: ${label} is a ${decoded.type}, which has no raw byte form; use --json, or --blob -o FILE for the serialized bytes`,
      );
    }
    await writeFile(resolve(io.cwd, output), bytes);
    io.stderr.write(`wrote ${label} (${decoded.type}, ${formatBytes(bytes.byteLength)}) to ${output}\n`);
  }
  if (args.flags.has("json")) {
    const form = toJsonForm(decoded);
    for (const n of form.notes) io.stderr.write(`note: ${label}: ${n}\n`);
    writeJson(io, { name: record.name, version: record.version, sha256: record.sha256, value: form.value });
    return 0;
  }
  if (output !== undefined) return 0;
  io.stdout.write(
    `${label}  ${record.type}${record.ts_type ? ` (${record.ts_type})` : ""}  ${formatBytes(record.size)}  sha256:${record.sha256}\n` +
      `recorded ${shortTime(record.created)} by cell ${record.cell ?? "-"}` +
      (record.notebook ? ` of ${record.notebook}` : "") +
      (record.execution ? ` (execution ${record.execution})` : "") +
      "\n",
  );
  switch (decoded.kind) {
    case "v8":
      io.stdout.write(render(decoded.value) + "\n");
      break;
    case "source":
      io.stdout.write(decoded.source + "\n");
      break;
    case "stub":
      io.stdout.write(`(not stored: ${decoded.reason}${decoded.path ? ` at \`${decoded.path}\`` : ""})\n`);
      break;
  }
  return 0;
}

function rawBytes(d: Decoded): Uint8Array | null {
  if (d.kind === "source") return Buffer.from(d.source, "utf8");
  if (d.kind !== "v8") return null;
  const v = d.value;
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

async function list(args: ParsedArgs, io: CliIO): Promise<number> {
  const ds = await openStore(args, io);
  const nb = stringFlag(args, "notebook");
  const filter = nb !== undefined ? { notebook: resolve(io.cwd, nb) } : {};
  const rows = [];
  for (const name of await ds.artifacts.names()) {
    const versions = await ds.versions(name, filter);
    const latest = versions[versions.length - 1];
    if (latest) rows.push({ latest, count: versions.length });
  }
  if (args.flags.has("json")) {
    writeJson(io, {
      artifacts: rows.map(({ latest: v, count }) => ({
        name: v.name,
        version: v.version,
        versions: count,
        sha256: v.sha256,
        type: v.type,
        size: v.size,
        created: v.created,
      })),
    });
    return 0;
  }
  if (rows.length === 0) {
    io.stdout.write("No variables recorded yet.\n");
    return 0;
  }
  io.stdout.write(
    table(
      ["NAME", "LATEST", "VERSIONS", "TYPE", "SIZE", "CREATED", "SHA256"],
      rows.map(({ latest: v, count }) => [v.name, `@${v.version}`, String(count), v.type, formatBytes(v.size), shortTime(v.created), v.sha256.slice(0, 12)]),
    ),
  );
  return 0;
}

export default artifact;

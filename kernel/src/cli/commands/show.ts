import { CliCommand, UsageError } from "../command";
import { duration, formatBytes, openStore, parseArgs, runCommand, writeJson } from "../support";
import { ExecutionRecord, LogRef } from "../../store/executions";
import { Datastore } from "../../store/datastore";
import { showRun } from "../show-run";

const usage = `Usage: nbscale show ID [options]

Shows one recorded execution in full: code, step options, inputs, outputs,
logs, status, times, target, worker, memory and environment. ID may be any
unique prefix of an execution id (see \`nbscale history\`), or a flow run id
(\`run-…\`, see \`nbscale runs\`): its steps, artifacts and logs.

Options:
  --json            last line of stdout: the execution record as one JSON object
                    (logs larger than 64 KiB are references to blobs)
  --compare NB      with a run id: which of the run's artifacts have the same
                    SHA-256 as the notebook NB's latest recorded versions
  --datastore DIR   datastore directory (default: $NBSCALE_DATASTORE, else ./.nbscale)
`;

const show: CliCommand = {
  name: "show",
  summary: "Show one recorded execution in full",
  usage,
  run: (argv, io) =>
    runCommand("show", usage, argv, io, async () => {
      const args = parseArgs("show", argv, { booleans: ["json"], values: ["datastore", "compare"] });
      if (args.positional.length !== 1) throw new UsageError(`nbscale show: expected one execution ID. See \`nbscale show --help\`.`);
      const ds = await openStore(args, io);
      if (args.positional[0].startsWith("run-")) {
        const compare = args.flags.get("compare");
        return showRun(ds, args.positional[0], { json: args.flags.has("json"), compare: typeof compare === "string" ? compare : undefined }, io);
      }
      const rec = await ds.executions.find(args.positional[0]);
      if (args.flags.has("json")) {
        writeJson(io, rec);
        return 0;
      }
      io.stdout.write(await renderRecord(ds, rec));
      return 0;
    }),
};

async function renderRecord(ds: Datastore, r: ExecutionRecord): Promise<string> {
  const lines: string[] = [];
  const refs = (m: Record<string, { version: number; sha256: string; type?: string; size?: number }>) =>
    Object.entries(m).map(
      ([n, v]) =>
        `  ${n}@${v.version}  sha256:${v.sha256.slice(0, 16)}` + (v.type ? `  ${v.type}` : "") + (v.size !== undefined ? `  ${formatBytes(v.size)}` : ""),
    );
  lines.push(`execution ${r.id}`);
  lines.push(`status    ${r.status}${r.error ? `: ${r.error.ename}: ${r.error.evalue}` : ""}`);
  lines.push(`notebook  ${r.notebook ?? "-"}`);
  lines.push(`cell      ${r.cell}${r.execution_count !== null ? ` [${r.execution_count}]` : ""}`);
  lines.push(`target    ${r.target}  on ${r.worker.host}${r.worker.pid !== null ? ` pid ${r.worker.pid}` : ""}${r.worker.id ? ` (${r.worker.id})` : ""}`);
  lines.push(`time      ${r.started} → ${r.finished} (${duration(r.started, r.finished)})`);
  const mem = r.memory;
  lines.push(
    `memory    requested ${mem.requested_bytes !== null ? formatBytes(mem.requested_bytes) : "-"}, peak ${mem.peak_bytes !== null ? formatBytes(mem.peak_bytes) : "-"}`,
  );
  lines.push(`env       node ${r.environment.node}, nbscale ${r.environment.nbscale}, package-lock ${r.environment.package_lock_sha256?.slice(0, 16) ?? "-"}`);
  if (r.step) lines.push(`step      ${r.step.name ?? "(unnamed)"} ${JSON.stringify(r.step.options)}`);
  lines.push(`code      sha256:${r.code_sha256}`);
  lines.push(...r.code.split("\n").map((l) => `  | ${l}`));
  lines.push("inputs", ...(Object.keys(r.inputs).length ? refs(r.inputs) : ["  (none)"]));
  lines.push("outputs", ...(Object.keys(r.outputs).length ? refs(r.outputs) : ["  (none)"]));
  for (const [name, ref] of [
    ["stdout", r.stdout],
    ["stderr", r.stderr],
  ] as Array<[string, LogRef]>) {
    if (ref.size === 0) continue;
    lines.push(`${name} (${formatBytes(ref.size)})`);
    const text = await ds.executions.readLog(ref, `${name} of execution ${r.id}`);
    lines.push(
      ...text
        .replace(/\n$/, "")
        .split("\n")
        .map((l) => `  ${l}`),
    );
  }
  const display = await ds.executions.readDisplay(r.display, `display outputs of execution ${r.id}`);
  if (display.length > 0) lines.push(`display outputs: ${display.length}`);
  if (r.error?.traceback.length) lines.push("traceback", ...r.error.traceback.map((l) => `  ${l}`));
  return lines.join("\n") + "\n";
}

export default show;

/**
 * `nbscale` command line: finds the sub-command module by name and runs it.
 * Usage errors print the message alone (no stack) and exit 2.
 *
 * Only the module of the command being run is loaded: `nbscale run` must not
 * pay for the TypeScript compiler (export), zeromq (worker) or the AWS SDK,
 * so `--help` reads the one-line summaries from the table below instead of
 * loading every command (test/cli/main.test.ts keeps the table in step with
 * each command's own `summary`).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UsageError, type CliCommand, type CliIO } from "./command";
import { VERSION } from "../version";

export const SUMMARIES: Readonly<Record<string, string>> = {
  kernel: "start the Jupyter kernel, or install its kernelspec",
  history: "List recorded cell executions (or the versions of one variable)",
  artifact: "Read a recorded variable version (artifact get NAME[@VERSION]) or list variables",
  show: "Show one recorded execution in full",
  fsck: "Check the datastore's integrity; list or clean leftovers",
  export: "Export a notebook to a flow file",
  run: "Run an exported flow headlessly",
  resume: "Resume a failed run, reusing unchanged steps",
  runs: "List flow runs",
  logs: "Print the log of one step of a run",
  worker: "Run steps for a kernel (started by the worker pool)",
};

export const COMMANDS = Object.keys(SUMMARIES);

export function load(name: string): CliCommand | null {
  const file = join(__dirname, "commands", `${name}.js`);
  if (!existsSync(file)) return null;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require(file) as { default: CliCommand }).default;
}

function help(): string {
  const lines = [`nbscale ${VERSION}`, "", "usage: nbscale <command> [options]   (nbscale <command> --help for details)", ""];
  for (const name of COMMANDS) {
    if (existsSync(join(__dirname, "commands", `${name}.js`))) lines.push(`  ${name.padEnd(10)} ${SUMMARIES[name]}`);
  }
  return lines.join("\n") + "\n";
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(help());
    return name ? 0 : 2;
  }
  if (name === "--version" || name === "-V") {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS.includes(name) ? load(name) : null;
  if (!command) {
    io.stderr.write(`nbscale: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(command.usage + "\n");
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`nbscale ${name}: ${e.message}\n`);
      return 2;
    }
    io.stderr.write(`nbscale ${name}: ${(e as Error).message ?? e}\n`);
    if (io.env.NBSCALE_DEBUG) io.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }).then((code) => process.exit(code));
}

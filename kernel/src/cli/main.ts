/**
 * `nbscale` command line: finds the sub-command module by name and runs it.
 * Usage errors print the message alone (no stack) and exit 2.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UsageError, type CliCommand, type CliIO } from "./command";
import { VERSION } from "../version";

const COMMANDS = ["kernel", "history", "artifact", "show", "fsck", "export", "run", "resume", "runs", "logs", "worker"];

function load(name: string): CliCommand | null {
  const file = join(__dirname, "commands", `${name}.js`);
  if (!existsSync(file)) return null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(file) as { default: CliCommand }).default;
}

function help(): string {
  const lines = [`nbscale ${VERSION}`, "", "usage: nbscale <command> [options]   (nbscale <command> --help for details)", ""];
  for (const name of COMMANDS) {
    const c = load(name);
    if (c) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
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
  void main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }).then(
    (code) => process.exit(code),
  );
}

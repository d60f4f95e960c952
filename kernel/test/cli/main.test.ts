import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { COMMANDS, load, SUMMARIES } from "../../src/cli/main";

const COMMANDS_DIR = join(__dirname, "..", "..", "src", "cli", "commands");

test("the help table lists every command module with the summary the module declares", () => {
  const modules = readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith(".js"))
    .map((f) => f.slice(0, -3))
    .sort();
  assert.deepEqual([...COMMANDS].sort(), modules);
  for (const name of COMMANDS) {
    const command = load(name);
    assert.ok(command, name);
    assert.equal(command.name, name);
    assert.equal(SUMMARIES[name], command.summary, `SUMMARIES.${name} in cli/main.ts`);
  }
});

/** Which heavy packages (and command modules) a CLI invocation loaded. */
function loadedBy(argv: string[]): string[] {
  const main = require.resolve("../../src/cli/main");
  const script =
    `const { main } = require(${JSON.stringify(main)});` +
    `const sink = { write: () => true };` +
    `main(${JSON.stringify(argv)}, { stdout: sink, stderr: sink, env: process.env, cwd: process.cwd() }).then(() => {` +
    `  const keys = Object.keys(require.cache);` +
    `  const heavy = ["typescript-for-tslab", "zeromq", "@aws-sdk"].filter((p) => keys.some((k) => k.includes(p)));` +
    `  const commands = keys.filter((k) => k.includes("/cli/commands/")).map((k) => k.replace(/.*\\/cli\\/commands\\//, ""));` +
    `  process.stdout.write(JSON.stringify([...heavy, ...commands]));` +
    `});`;
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })) as string[];
}

test("--help loads no command module; run --help loads run's alone, and none of the heavy packages", () => {
  assert.deepEqual(loadedBy(["--help"]), []);
  assert.deepEqual(loadedBy(["run", "--help"]), ["run.js"]);
  assert.deepEqual(loadedBy(["resume", "--help"]), ["resume.js"]);
});

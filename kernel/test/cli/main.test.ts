import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
function loadedBy(argv: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const main = require.resolve("../../src/cli/main");
  const script =
    `const { main } = require(${JSON.stringify(main)});` +
    `const sink = { write: () => true };` +
    `main(${JSON.stringify(argv)}, { stdout: sink, stderr: sink, env: process.env, cwd: process.cwd() }).then(() => {` +
    `  const keys = Object.keys(require.cache);` +
    `  const heavy = [["typescript", "/node_modules/typescript/"], ["zeromq", "/zeromq/"], ["@aws-sdk", "@aws-sdk"]].filter(([, p]) => keys.some((k) => k.includes(p))).map(([n]) => n);` +
    `  const commands = keys.filter((k) => k.includes("/cli/commands/")).map((k) => k.replace(/.*\\/cli\\/commands\\//, ""));` +
    `  process.stdout.write(JSON.stringify([...heavy, ...commands]));` +
    `});`;
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8", env })) as string[];
}

test("--help loads no command module; run --help loads run's alone, and none of the heavy packages", () => {
  assert.deepEqual(loadedBy(["--help"]), []);
  assert.deepEqual(loadedBy(["run", "--help"]), ["run.js"]);
  assert.deepEqual(loadedBy(["resume", "--help"]), ["resume.js"]);
});

test("a local run of a cached flow loads neither the compiler nor zeromq nor the AWS SDK", () => {
  const dir = mkdtempSync(join(tmpdir(), "nbscale-cli-test-"));
  const flow = join(dir, "flow.ts");
  writeFileSync(
    flow,
    'import { flow, step } from "nbscale";\nconst a = step("a", {}, () => {\nconst x: number = 1;\nreturn { x };\n});\nexport default flow("tiny", [a]);\n',
  );
  const env = { ...process.env, NBSCALE_CACHE_DIR: join(dir, "cache") };
  const argv = ["run", flow, "--datastore", join(dir, "ds")];
  assert.deepEqual(loadedBy(argv, env), ["typescript", "run.js"], "the first run compiles");
  assert.deepEqual(loadedBy(argv, env), ["run.js"]);
});

test("run starts no local worker ahead when every step goes to Slurm or Batch", async () => {
  const { wantsLocalWorker } = await import("../../src/cli/run-targets");
  assert.equal(wantsLocalWorker(["flow.ts"]), true);
  assert.equal(wantsLocalWorker(["flow.ts", "--on", "local"]), true);
  assert.equal(wantsLocalWorker(["flow.ts", "--on", "slurm"]), false);
  assert.equal(wantsLocalWorker(["--on=batch", "flow.ts"]), false);
  assert.equal(wantsLocalWorker(["--help"]), false);
});

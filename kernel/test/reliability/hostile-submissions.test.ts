/**
 * Hostile `%%step` values on their way to AWS Batch and Slurm (issue 11):
 * they travel as structured fields and argv words, never as shell text. The
 * Slurm script is run by a real sh to prove it (Slurm itself is not started).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { MagicError, parseCellMagic } from "../../src/magics";
import { submitJobInput } from "../../src/backends/batch/submit";
import { containerCommand } from "../../src/backends/batch/bootstrap";
import { batchScript, sbatchArgs } from "../../src/backends/slurm/script";
import { slurmSettings } from "../../src/backends/slurm/settings";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-hostile-"));
const canary = path.join(dir, "pwned");
/** Every way a shell would run something, each aimed at the canary. */
const HOSTILE = [`$(touch ${canary})`, `\`touch ${canary}\``, `x; touch ${canary}`, `x && touch ${canary} #`, `'"; touch ${canary}; echo "'`];

function parsedEnv(value: string): Record<string, string> {
  // The user quotes the value as a shell user would; the magic parser takes it as one word.
  const quoted = `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  const parsed = parseCellMagic(`%%step s --on batch --env V=${quoted}\nconst x = 1;`);
  assert.ok(parsed);
  return parsed.options.env;
}

test("--env values reach the parser verbatim and a NUL byte is refused", () => {
  for (const v of HOSTILE) assert.deepEqual(parsedEnv(v), { V: v });
  assert.throws(
    () => parseCellMagic(`%%step s --env "V=a\0b"\nconst x = 1;`),
    (e: MagicError) => /NUL byte/.test(e.message),
  );
  for (const name of ["../x", "a/b", "a\0b", "$(id)", "x;y", "`id`", ".."]) {
    assert.throws(() => parseCellMagic(`%%step "${name}"\nconst x = 1;`), MagicError, name);
  }
});

test("Batch: a hostile --env value is one environment entry, never part of the command", () => {
  for (const v of HOSTILE) {
    const input = submitJobInput({ step: "s", queue: "q", jobDefinition: "d:1", datastore: "s3://b/p", task: "t-1", env: parsedEnv(v) });
    const environment = input.containerOverrides?.environment ?? [];
    assert.deepEqual(
      environment.filter((e) => e.name === "V"),
      [{ name: "V", value: v }],
    );
    assert.equal(input.containerOverrides?.command, undefined, "the job definition's fixed command is never overridden");
    const rest = { ...input.containerOverrides, environment: undefined };
    assert.ok(!JSON.stringify({ ...input, containerOverrides: rest }).includes(v), "the value appears nowhere else");
    assert.ok(!containerCommand("1.2.3").join(" ").includes(v));
  }
  // A user's --env can't redirect the worker to another task or datastore.
  const input = submitJobInput({
    step: "s",
    queue: "q",
    jobDefinition: "d:1",
    datastore: "s3://b/p",
    task: "t-1",
    env: { NBSCALE_TASK: "other", NBSCALE_DATASTORE: "s3://evil" },
  });
  const env = Object.fromEntries((input.containerOverrides?.environment ?? []).map((e) => [e.name, e.value]));
  assert.equal(env.NBSCALE_TASK, "t-1");
  assert.equal(env.NBSCALE_DATASTORE, "s3://b/p");
});

test("Slurm: sbatch gets argv words and a script sh reads as data, whatever the step and paths hold", () => {
  const hostilePath = `/tmp/nb $(touch ${canary}) \`touch ${canary}\`; touch ${canary}`;
  const s = {
    ...slurmSettings({
      env: { NBSCALE_SLURM_NODE: "/bin/echo" },
      datastore: { kind: "fs", path: hostilePath, source: "env" },
      cwd: hostilePath,
      packageDir: "/opt/nbscale",
    }),
    nodeDatastore: hostilePath,
  };
  const spec = { step: `s; touch ${canary}`, task: "t-1", output: `${hostilePath}/%j.out` };
  const args = sbatchArgs(spec, s, "/tmp/job.sh");
  assert.ok(args.includes(`--chdir=${hostilePath}`) && args.includes(`--output=${hostilePath}/%j.out`), "each value is one argv word");
  assert.ok(args.every((a) => !a.startsWith("--job-name=") || /^--job-name=[A-Za-z0-9_-]+$/.test(a)));
  const script = path.join(dir, "job.sh");
  fs.writeFileSync(script, batchScript(spec, s));
  const out = execFileSync("sh", [script], { encoding: "utf8" });
  assert.equal(out, `/opt/nbscale/bin/nbscale.js worker --task ${hostilePath} t-1\n`);
  assert.ok(!fs.existsSync(canary), "nothing in the script ran as shell code");
});

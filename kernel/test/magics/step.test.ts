import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyCell, formatStepLine, MagicError, parseCellMagic, StepOptions } from "../../src/magics";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

function step(line: string, config = {}) {
  const parsed = parseCellMagic(`${line}\nconst x = 1;`, config);
  assert.ok(parsed);
  return parsed;
}

function fails(line: string, pattern: RegExp): MagicError {
  let caught: unknown;
  try {
    parseCellMagic(`${line}\nx`);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof MagicError, `expected a MagicError for ${line}`);
  assert.match(caught.message, pattern);
  return caught;
}

test("a cell without magic is not a step", () => {
  assert.equal(parseCellMagic("const a = 1;\nconsole.log(a % 2);"), null);
  assert.equal(parseCellMagic(""), null);
});

test("the example from the issue", () => {
  const p = step("%%step demo --on local --memory 8G --cpu 2");
  assert.equal(p.magic, "step");
  assert.deepEqual(p.options, { name: "demo", on: "local", memory: 8 * GiB, cpu: 2, env: {} });
  assert.equal(p.body, "const x = 1;");
  assert.equal(p.bodyLineOffset, 1);
  assert.deepEqual(p.warnings, []);
});

test("every option, in both --opt value and --opt=value forms", () => {
  const p = step(
    `%%step train --on=batch --memory=64GiB --cpu 4 --gpu=1 --foreach "items.slice(0, 3)" --parallel 3 ` +
      `--retries=2 --timeout 1h30m --env "MSG=hello world" --env K=v --queue q1 --image repo/img:1 --partition=p`,
  );
  assert.deepEqual(p.options, {
    name: "train",
    on: "batch",
    memory: 64 * GiB,
    cpu: 4,
    gpu: 1,
    foreach: "items.slice(0, 3)",
    parallel: 3,
    retries: 2,
    timeout: 90 * 60_000,
    env: { MSG: "hello world", K: "v" },
    queue: "q1",
    image: "repo/img:1",
    partition: "p",
  });
  assert.deepEqual(p.warnings, ["--partition only applies to --on slurm; ignored while this step runs --on batch"]);
});

test("name is optional and may come after options; --on default comes from config", () => {
  assert.deepEqual(step("%%step").options, { on: "local", env: {} });
  assert.equal(step("%%step --memory 1G").options.name, undefined);
  assert.equal(step("%%step --memory 1G late_name").options.name, "late_name");
  assert.equal(step("%%step", { defaultTarget: "slurm" }).options.on, "slurm");
  assert.equal(step("%%step --on kernel", { defaultTarget: "slurm" }).options.on, "kernel");
});

test("sizes", () => {
  const cases: Array<[string, number]> = [
    ["512M", 512 * MiB],
    ["8G", 8 * GiB],
    ["64GiB", 64 * GiB],
    ["1.5G", 1.5 * GiB],
    ["2048MiB", 2048 * MiB],
    ["100K", 100 * 1024],
    ["1T", 2 ** 40],
    ["8g", 8 * GiB],
    ["8GB", 8 * GiB],
  ];
  for (const [text, bytes] of cases) assert.equal(step(`%%step --memory ${text}`).options.memory, bytes, text);
});

test("durations", () => {
  const cases: Array<[string, number]> = [
    ["90s", 90_000],
    ["10m", 600_000],
    ["2h", 7_200_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["500ms", 500],
  ];
  for (const [text, ms] of cases) assert.equal(step(`%%step --timeout ${text}`).options.timeout, ms, text);
});

test("misspelled option suggests the right one", () => {
  const e = fails("%%step --memroy 8G", /^unknown option --memroy \(did you mean --memory\?\)$/);
  assert.equal(e.column, 7);
  fails("%%step --paralel 2", /did you mean --parallel\?/);
  fails("%%step --zzzzzz 2", /unknown option --zzzzzz; %%step accepts --on, --memory/);
  fails("%%step --memroy=8G", /unknown option --memroy \(did you mean --memory\?\)/);
});

test("bad values name the culprit and the accepted forms", () => {
  const e = fails("%%step --memory lots", /^--memory lots: expected a size like 512M, 8G or 64GiB$/);
  assert.equal(e.column, 16);
  fails("%%step --memory 512", /--memory 512: expected a size/);
  fails("%%step --memory 0G", /--memory 0G: expected a size/);
  fails("%%step --cpu 0", /^--cpu 0: expected a positive integer$/);
  fails("%%step --cpu 1.5", /^--cpu 1.5: expected a positive integer$/);
  fails("%%step --parallel 0", /^--parallel 0: expected a positive integer$/);
  fails("%%step --retries -1", /^--retries -1: expected a non-negative integer$/);
  fails("%%step --gpu x", /^--gpu x: expected a non-negative integer$/);
  fails("%%step --on cloud", /^--on cloud: expected one of kernel, local, batch, slurm$/);
  fails("%%step --on bacth", /did you mean batch\?/);
  fails("%%step --timeout soon", /^--timeout soon: expected a duration like 90s, 10m, 2h or 1h30m$/);
  fails("%%step --timeout 30m1h", /--timeout 30m1h: expected a duration/);
  fails("%%step --env NOEQUALS", /--env NOEQUALS: expected KEY=VALUE/);
  fails("%%step --env 1X=2", /--env 1X=2: expected KEY=VALUE/);
  fails('%%step --foreach ""', /--foreach: expected an expression/);
});

test("step names are never paths", () => {
  fails("%%step ../x", /^step name "\.\.\/x": use letters, digits, _ and - only/);
  fails("%%step a/b", /step name "a\/b"/);
  fails("%%step -x", /step name "-x"/);
  fails("%%step a b", /unexpected argument b: the step is already named "a"/);
  assert.equal(step("%%step my-step_2").options.name, "my-step_2");
});

test("duplicates and missing values", () => {
  fails("%%step --memory 8G --memory 16G", /^--memory given twice \(8G and 16G\); keep one$/);
  fails("%%step --env A=1 --env A=2", /--env A given twice/);
  fails("%%step --memory", /^--memory: missing value; expected a size like 512M/);
  fails("%%step --memory --cpu 2", /^--memory: missing value/);
  fails("%%step --on=", /--on "": expected one of/);
  fails('%%step --foreach "items', /unterminated " quote starting at column 18/);
});

test("unknown and misplaced cell magics", () => {
  fails("%%stpe train", /^unknown cell magic %%stpe \(did you mean %%step\?\); known cell magics: %%step$/);
  fails("%%bash", /unknown cell magic %%bash; known cell magics: %%step/);
  assert.throws(() => parseCellMagic("const a = 1;\n%%step x"), /line 2: %%step must be the first line of the cell/);
  assert.throws(() => parseCellMagic("%%step\n%%step"), /at most one %% magic/);
});

test("blank lines before the magic shift the body offset", () => {
  const p = parseCellMagic("\n\n%%step s\na\nb");
  assert.ok(p);
  assert.equal(p.bodyLineOffset, 3);
  assert.equal(p.body, "a\nb");
  assert.equal(p.bodyOffset, 11);
  const crlf = parseCellMagic("%%step s\r\nx = 1\r\n");
  assert.ok(crlf);
  assert.equal(crlf.body, "x = 1\r\n");
  assert.equal(crlf.bodyOffset, 10);
  assert.equal(crlf.line, "%%step s");
  const only = parseCellMagic("%%step s");
  assert.ok(only);
  assert.deepEqual([only.body, only.bodyOffset], ["", 8]);
});

test("warnings for options that do nothing on this target", () => {
  assert.deepEqual(step("%%step --queue q").warnings, ["--queue only applies to --on batch; ignored while this step runs --on local"]);
  assert.deepEqual(step("%%step --parallel 2").warnings, ["--parallel only applies together with --foreach; ignored"]);
  assert.deepEqual(step("%%step --on slurm --partition p --image i").warnings, []);
});

test("formatStepLine round-trips", () => {
  const samples: StepOptions[] = [
    { on: "local", env: {} },
    { name: "demo", on: "local", memory: 8 * GiB, cpu: 2, env: {} },
    {
      name: "t",
      on: "batch",
      memory: 1.5 * GiB,
      gpu: 0,
      retries: 0,
      timeout: 5_400_500,
      env: { MSG: 'say "hi" \\ there', E: "" },
      queue: "my queue",
      image: "a/b:c",
    },
    { on: "slurm", foreach: "items.slice(0, 3)", parallel: 4, partition: "debug", env: {}, memory: 100 },
    { on: "kernel", foreach: "--weird", env: { A: "x=y" } },
  ];
  for (const options of samples) {
    const line = formatStepLine(options);
    assert.deepEqual(step(line).options, options, line);
  }
  assert.equal(
    formatStepLine({ name: "demo", on: "local", memory: 8 * GiB, cpu: 2, timeout: 5_400_000, env: { MSG: "hello world" } }),
    '%%step demo --on local --memory 8G --cpu 2 --timeout 1h30m --env "MSG=hello world"',
  );
  assert.throws(() => formatStepLine({ on: "local", foreach: "a\nb", env: {} }), /spans lines/);
  assert.throws(() => formatStepLine({ name: "../x", on: "local", env: {} }), /letters, digits/);
});

test("classifyCell", () => {
  assert.deepEqual(classifyCell("const a = 1"), { kind: "code", code: "const a = 1" });
  assert.equal(classifyCell("%%step s\nconst a = 1").kind, "step");
  assert.deepEqual(classifyCell("%workers\n\n// pool\n%history train"), {
    kind: "line-magics",
    magics: [
      { line: 0, magic: { magic: "workers" } },
      { line: 3, magic: { magic: "history", name: "train" } },
    ],
  });
  assert.throws(() => classifyCell("%workers\nconst a = 1"), /line 1: %workers must be in a cell of its own \(line 2 is code\)/);
  assert.throws(() => classifyCell("%%step\n%workers"), /line magics cannot run inside a %%step cell/);
  // A modulo continuation line is code, not a magic.
  assert.equal(classifyCell("const a = 7\n% 2").kind, "code");
});

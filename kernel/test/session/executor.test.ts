import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor } from "../../src/session/executor";
import { PACKAGE_DIR } from "../../src/version";

const executor = new Executor({
  cwd: mkdtempSync(join(tmpdir(), "nbscale-exec-")),
  packageDir: PACKAGE_DIR,
  builtinModules: { nbscale: () => require("../../src/client/index") },
});
test.after(() => executor.close());

test("values and types carry across cells; the last expression is the result", async () => {
  assert.deepEqual(await executor.execute("const base = 10;\nfunction scale(x: number) { return x * base; }"), {
    ok: true,
    hasValue: false,
  });
  const r = await executor.execute("scale(4)");
  assert.ok(r.ok && r.hasValue && r.value === 40);
  const bad = await executor.execute("const s: string = scale(1);");
  assert.ok(!bad.ok && bad.error.ename === "TSError" && /1:7/.test(bad.error.evalue));
});

test("a redeclared const in a later cell replaces the earlier one", async () => {
  await executor.execute("const v = 1;");
  const r = await executor.execute('const v = "two"; v.length');
  assert.ok(r.ok && r.value === 3);
});

test("bind() adds typed values that later cells type-check against", async () => {
  const r = await executor.bind([{ name: "total", value: 123, type: "number" }]);
  assert.ok(r.ok);
  assert.equal(executor.valueOf("total"), 123);
  const bad = await executor.execute("const t: string = total;");
  assert.ok(!bad.ok && /not assignable to type 'string'/.test(bad.error.evalue));
  const fallback = await executor.bind([{ name: "weird", value: { a: 1 }, type: "NoSuchType<number>" }]);
  assert.ok(fallback.ok, "an unresolvable type degrades to any");
  const ok = await executor.execute("weird.a + 1");
  assert.ok(ok.ok && ok.value === 2);
});

test("bind() and adopt() set a variable of any name, including the names their own code uses", async () => {
  const names = ["v", "v$", "value", "name", "s", "g"];
  const r = await executor.bind(names.map((name, i) => ({ name, value: i + 1, type: "number" })));
  assert.ok(r.ok);
  // What a step's results take: declarations checked here, values set from elsewhere.
  const { diagnostics, declOutput } = executor.check(names.map((n) => `const ${n} = 0;`).join("\n"));
  assert.deepEqual(diagnostics, []);
  executor.adopt(
    declOutput!,
    names.map((n, i) => [n, (i + 1) * 10]),
  );
  for (const [i, name] of names.entries()) {
    assert.equal(executor.valueOf(name), (i + 1) * 10, name);
    const read = await executor.execute(name);
    assert.ok(read.ok && read.value === (i + 1) * 10, `${name}: ${JSON.stringify(read)}`);
  }
});

test("interrupt() stops a pending top-level await and the session survives", async () => {
  const pending = executor.execute("await new Promise(() => {}); 1");
  setTimeout(() => executor.interrupt(), 50);
  const r = await pending;
  assert.ok(!r.ok && r.error.ename === "KeyboardInterrupt");
  const after = await executor.execute("base + 1");
  assert.ok(after.ok && after.value === 11);
});

test("runtime errors name the cell line of the throw", async () => {
  const r = await executor.execute('const q = 1;\nif (q > 0) {\n  throw new TypeError("nope");\n}');
  assert.ok(!r.ok);
  assert.equal(r.error.ename, "TypeError");
  assert.ok(
    r.error.traceback.some((l) => l.includes("line 3")),
    r.error.traceback.join("\n"),
  );
});

test("is_complete follows brackets; completion and inspection use the checker", () => {
  assert.equal(executor.isComplete("function f() {").status, "incomplete");
  assert.equal(executor.isComplete("1 + 1").status, "complete");
  assert.ok(executor.complete("base.toFi", 9).matches.includes("toFixed"));
  assert.match(executor.inspect("scale", 5) ?? "", /function scale\(x: number\): number/);
});

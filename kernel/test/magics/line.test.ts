import { test } from "node:test";
import assert from "node:assert/strict";
import { MagicError, parseLineMagic } from "../../src/magics";

function fails(line: string, pattern: RegExp): void {
  assert.throws(
    () => parseLineMagic(line),
    (e: unknown) => e instanceof MagicError && pattern.test(e.message),
  );
}

test("not a line magic", () => {
  assert.equal(parseLineMagic("const a = 1"), null);
  assert.equal(parseLineMagic("%%step x"), null);
  assert.equal(parseLineMagic("% 2"), null);
});

test("each line magic", () => {
  assert.deepEqual(parseLineMagic("%history"), { magic: "history" });
  assert.deepEqual(parseLineMagic("%history train"), { magic: "history", name: "train" });
  assert.deepEqual(parseLineMagic("%restore total"), { magic: "restore", name: "total" });
  assert.deepEqual(parseLineMagic("%restore total@3"), { magic: "restore", name: "total", version: "3" });
  assert.deepEqual(parseLineMagic("%restore total@ab12cd"), { magic: "restore", name: "total", version: "ab12cd" });
  assert.deepEqual(parseLineMagic("%export"), { magic: "export" });
  assert.deepEqual(parseLineMagic('%export "my flows/flow.ts"'), { magic: "export", path: "my flows/flow.ts" });
  assert.deepEqual(parseLineMagic("  %workers  "), { magic: "workers" });
  assert.deepEqual(parseLineMagic("%lsmagic"), { magic: "lsmagic" });
});

test("line magic errors", () => {
  fails("%histroy", /^unknown line magic %histroy \(did you mean %history\?\); known line magics: %history, %restore, %export, %workers, %lsmagic$/);
  fails("%time x", /unknown line magic %time/);
  fails("%restore", /^%restore: missing NAME; usage: %restore NAME\[@VERSION\]$/);
  fails("%restore a@", /version "" is not a version/);
  fails("%restore ../x", /a name is made of letters/);
  fails("%workers now", /^%workers: unexpected argument now; usage: %workers$/);
  fails("%history a b", /unexpected argument b/);
});

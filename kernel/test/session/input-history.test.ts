import { test } from "node:test";
import assert from "node:assert/strict";
import { InputHistory } from "../../src/session/input-history";

function sample(): InputHistory {
  const h = new InputHistory();
  ["6*7", "x = 1", "6*7", "console.log(6*7)"].forEach((code, i) => h.add(i + 1, code));
  return h;
}

test("tail returns the last n entries as (session, line, input)", () => {
  assert.deepEqual(sample().tail(2, false), [
    [1, 3, "6*7"],
    [1, 4, "console.log(6*7)"],
  ]);
  assert.deepEqual(sample().tail(1, true), [[1, 4, ["console.log(6*7)", null]]]);
});

test("range is [start, stop) within this session; session 0 means the current one", () => {
  assert.deepEqual(sample().range(1, 2, 3, false), [[1, 2, "x = 1"]]);
  assert.deepEqual(sample().range(0, 1, 2, false), [[1, 1, "6*7"]]);
  assert.deepEqual(sample().range(7, 1, 9, false), []);
});

test("search matches a whole-input glob, with unique and n", () => {
  const h = sample();
  assert.equal(h.search("6?7", undefined, false, false).length, 2);
  assert.deepEqual(h.search("6?7", undefined, true, false), [[1, 3, "6*7"]]);
  assert.equal(h.search("*6*7*", 1, false, false).length, 1);
  assert.equal(h.search("*", undefined, false, false).length, 4);
  assert.equal(h.search("x.=.1", undefined, false, false).length, 0, "regex metacharacters are literal");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { LineMap } from "../../src/session/line-map";

test("maps emitted JavaScript lines back to TypeScript cell lines", () => {
  const ts = [
    "interface P { x: number }",
    "const limit: number = 2;",
    "function f(p: P): number {",
    "  if (p.x > limit) {",
    '    throw new RangeError("too big");',
    "  }",
    "  return p.x;",
    "}",
    "f({ x: 5 })",
  ].join("\n");
  const js = [
    'Object.defineProperty(exports, "__esModule", { value: true });',
    "exports.limit = exports.f = exports.tsLastExpr = void 0;",
    "const limit = 2;",
    "exports.limit = limit;",
    "function f(p) {",
    "    if (p.x > limit) {",
    '        throw new RangeError("too big");',
    "    }",
    "    return p.x;",
    "}",
    "exports.f = f;",
    "exports.tsLastExpr = f({ x: 5 });",
  ].join("\n");
  const map = new LineMap(js, ts);
  assert.equal(map.tsLine(6), 4, "throw");
  assert.equal(map.tsLine(4), 2, "function header");
  assert.equal(map.tsLine(11), 8, "last expression");
  assert.equal(map.tsLine(3), 1, "an emitter-added line belongs to the statement above");
});

test("out-of-range lines clamp instead of failing", () => {
  const map = new LineMap("a();\nb();", "a();\nb();");
  assert.equal(map.tsLine(-1), 0);
  assert.equal(map.tsLine(99), 1);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { analyzeStep, HistoryCell, StepAnalysis } from "../../src/step/analysis";

function cells(...codes: string[]): HistoryCell[] {
  return codes.map((code, i) => ({ id: `c${i + 1}`, code }));
}

const inputNames = (a: StepAnalysis): string[] => a.inputs.map((i) => i.name).sort();
const closureNames = (a: StepAnalysis): string[] => a.closure.flatMap((c) => c.names);
const unresolvedNames = (a: StepAnalysis): string[] => a.unresolved.map((u) => u.name).sort();

test("the issue's example: function from one cell, const from another, data as input", () => {
  const history = cells(
    "const base = 10;",
    "function scale(x: number) { return x * base; }",
    "const data = Float64Array.from({ length: 1_000_000 }, (_, i) => i);",
    "const unrelatedBig = new Array(10_000_000).fill(1);",
  );
  const a = analyzeStep('const total = data.reduce((a, b) => a + scale(b), 0);\nconsole.log("done");', history);
  assert.deepEqual(inputNames(a), ["base", "data"]);
  assert.deepEqual(
    a.closure.map((c) => [c.names, c.kind, c.cellId, c.source, c.typeOnly]),
    [[["scale"], "function", "c2", "function scale(x: number) { return x * base; }", false]],
  );
  assert.deepEqual(a.outputs, [{ name: "total", kind: "value", value: true, type: false, line: 0 }]);
  assert.deepEqual(a.unresolved, []);
  assert.deepEqual(a.globals, ["console"]);
  assert.ok(!inputNames(a).includes("unrelatedBig"), "nothing unrelated is shipped");
});

test("outputs: every kind of top-level declaration", () => {
  const a = analyzeStep(
    [
      "const a = 1, { b, c: [d] } = obj;",
      "let e;",
      "var f = () => 1;",
      "function g() {}",
      "class H {}",
      "enum I { X }",
      "type J = number;",
      "interface K {}",
      "const L = class {};",
      "import * as M from 'node:path';",
    ].join("\n"),
    cells("const obj = { b: 1, c: [2] };"),
  );
  assert.deepEqual(
    a.outputs.map((o) => [o.name, o.kind, o.value, o.type]),
    [
      ["a", "value", true, false],
      ["b", "value", true, false],
      ["d", "value", true, false],
      ["e", "value", true, false],
      ["f", "function", true, false],
      ["g", "function", true, false],
      ["H", "class", true, true],
      ["I", "enum", true, true],
      ["J", "type", false, true],
      ["K", "type", false, true],
      ["L", "class", true, true],
      ["M", "import", true, true],
    ],
  );
  assert.deepEqual(inputNames(a), ["obj"]);
});

test("shadowing by parameters, locals, block scopes and catch does not count as a read", () => {
  const history = cells("const x = 1; const y = 2; const e = 3; const i = 4;");
  const a = analyzeStep(
    [
      "function f(x: number) { return x; }",
      "const g = (y: number) => { { const x = y; return x; } };",
      "try { } catch (e) { console.log(e); }",
      "for (let i = 0; i < 3; i++) { }",
      "{ let y = 5; y++; }",
    ].join("\n"),
    history,
  );
  assert.deepEqual(inputNames(a), []);
  assert.deepEqual(a.assigns, []);
});

test("destructuring parameters and defaults; default-parameter reads are reads", () => {
  const history = cells("const fallback = 7; const a = 1;");
  const r = analyzeStep("const f = ({ a, b = fallback }: any, [c] = [a]) => a + b + c;", history);
  assert.deepEqual(inputNames(r), ["fallback"]);
  const r2 = analyzeStep("function h(n = fallback) { return n; }", history);
  assert.deepEqual(inputNames(r2), ["fallback"]);
});

test("hoisted function declarations and names declared later in the same cell are the cell's own", () => {
  const history = cells("function helper() { return 1; }", "const later = 5;");
  const a = analyzeStep("const r = helper() + later;\nfunction helper() { return 2; }\nconst later = 6;", history);
  assert.deepEqual(inputNames(a), []);
  assert.deepEqual(closureNames(a), []);
  assert.deepEqual(a.unresolved, []);
});

test("object shorthand { base } reads base; property names and obj.base do not", () => {
  const history = cells("const base = 1;", "const obj = { base: 2 };", "const other = 3;");
  const a = analyzeStep("const o = { base };", history);
  assert.deepEqual(inputNames(a), ["base"]);
  const b = analyzeStep("const v = obj.base;\nconst p = { other: 1, base: 2 };\nclass Q { base = 1; other() {} }", history);
  assert.deepEqual(inputNames(b), ["obj"]);
});

test("type-only use ships the type as type-only source, not data", () => {
  const history = cells("interface Point { x: number; y: number }", "type Pair = [Point, Point];", "const config = { depth: 3, name: 'x' };");
  const a = analyzeStep("const p: Pair = [{ x: 1, y: 2 }, { x: 3, y: 4 }];\ntype Cfg = typeof config;", history);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.kind, c.typeOnly]),
    [
      ["Point", "type", true],
      ["Pair", "type", true],
    ],
  );
  assert.deepEqual(a.inputs, [{ name: "config", cellId: "c3", cellIndex: 2, typeOnly: true }]);
  const b = analyzeStep("const d = config.depth;\nlet c: typeof config;", history);
  assert.deepEqual(b.inputs, [{ name: "config", cellId: "c3", cellIndex: 2, typeOnly: false }]);
});

test("a class extending a class from another cell: base first, both as source", () => {
  const history = cells(
    "const greeting = 'hi';\nclass Animal { speak() { return greeting; } }",
    "class Dog extends Animal { bark() { return 'woof'; } }",
    "const Animal2 = 1;",
  );
  const a = analyzeStep("const d = new Dog();", history);
  assert.deepEqual(closureNames(a), ["Animal", "Dog"]);
  assert.deepEqual(inputNames(a), ["greeting"]);
});

test("latest definition wins; eager dependencies reorder source", () => {
  // Dog (cell 2) extends Animal, which cell 3 redefines: the redefinition must run first.
  const history = cells("class Animal { name() { return 'old'; } }", "class Dog extends Animal {}", "class Animal { name() { return 'new'; } }");
  const a = analyzeStep("new Dog().name();", history);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.cellId]),
    [
      ["Animal", "c3"],
      ["Dog", "c2"],
    ],
  );
});

test("an enum is shipped as source, with what its initializers read", () => {
  const history = cells("const SHIFT = 2;", "enum Flag { A = 1 << SHIFT, B = A << 1 }", "const flags = [1, 2];");
  const a = analyzeStep("const isB = (f: number) => f === Flag.B;", history);
  assert.deepEqual(closureNames(a), ["Flag"]);
  assert.equal(a.closure[0].source, "enum Flag { A = 1 << SHIFT, B = A << 1 }");
  assert.deepEqual(inputNames(a), ["SHIFT"]);
});

test("template literals and nested closures read their names", () => {
  const history = cells("const who = 'world';", "const times = 3;", "const unused = 1;");
  const a = analyzeStep("const make = () => () => `hello ${who}`.repeat(times);", history);
  assert.deepEqual(inputNames(a), ["times", "who"]);
});

test("a redefined function: the latest definition and its own dependencies", () => {
  const history = cells("const a = 1;\nconst b = 2;", "function pick() { return a; }", "function pick() { return b; }");
  const r = analyzeStep("const v = pick();", history);
  assert.deepEqual(
    r.closure.map((c) => [c.names[0], c.cellId]),
    [["pick", "c3"]],
  );
  assert.deepEqual(inputNames(r), ["b"]);
});

test("re-running the same cell (same id) replaces its definitions", () => {
  const history: HistoryCell[] = [
    { id: "x", code: "const k = 1;\nconst f = (n: number) => n * k;" },
    { id: "x", code: "const k = 2;\nconst f = (n: number) => n + k;" },
  ];
  const r = analyzeStep("f(1)", history);
  assert.deepEqual(
    r.closure.map((c) => [c.source, c.cellIndex]),
    [["const f = (n: number) => n + k;", 1]],
  );
  assert.deepEqual(
    r.inputs.map((i) => [i.name, i.cellIndex]),
    [["k", 1]],
  );
});

test("transitive closure across three cells", () => {
  const history = cells(
    "const rate = 0.5;",
    "function tax(x: number) { return x * rate; }",
    "const total = (xs: number[]) => xs.map(tax).reduce((a, b) => a + b, 0);",
    "const prices = [1, 2, 3];",
  );
  const a = analyzeStep("const t = total(prices);", history);
  assert.deepEqual(closureNames(a), ["tax", "total"]);
  assert.deepEqual(inputNames(a), ["prices", "rate"]);
});

test("imports: only the needed names, aliases kept, require() treated as an import", () => {
  const history = cells(
    "import { join, resolve as res, basename } from 'node:path';\nimport * as os from 'node:os';\nimport def from 'node:assert';",
    "const fs = require('node:fs');",
    "import type { Stats } from 'node:fs';",
  );
  const a = analyzeStep("const p = res(join('a', 'b'));\nconst h = os.homedir();\nconst e = fs.existsSync(p);\nlet s: Stats;", history);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.source, c.typeOnly]),
    [
      ["join", "import { join } from 'node:path';", false],
      ["res", "import { resolve as res } from 'node:path';", false],
      ["os", "import * as os from 'node:os';", false],
      ["fs", "const fs = require('node:fs');", false],
      ["Stats", "import type { Stats } from 'node:fs';", true],
    ],
  );
  assert.deepEqual(a.inputs, []);
});

test("unresolved names, in the body and in shipped functions", () => {
  const history = cells("function uses() { return missingThing + 1; }");
  const a = analyzeStep("const v = foo + uses();\nlet t: Missing;", history);
  assert.deepEqual(unresolvedNames(a), ["Missing", "foo", "missingThing"]);
  const foo = a.unresolved.find((u) => u.name === "foo")!;
  assert.equal(foo.message, "`foo` is not defined in this notebook");
  assert.deepEqual(foo.usedBy, { step: true, line: 0 });
  const deep = a.unresolved.find((u) => u.name === "missingThing")!;
  assert.deepEqual(deep.usedBy, { step: false, name: "uses", cellId: "c1", cellIndex: 0 });
  assert.match(deep.message, /`missingThing` is not defined in this notebook \(used by `uses` from cell c1\)/);
  assert.equal(a.unresolved.find((u) => u.name === "Missing")!.usedBy.step, true);
});

test("globals are not unresolved", () => {
  const a = analyzeStep(
    "console.log(Math.max(1, 2), process.pid, JSON.stringify({}), Buffer.from('x'), globalThis, require, setTimeout, undefined, NaN, structuredClone, __dirname);\n" +
      "const r: Record<string, Promise<number>> = {};\nconst u: Uint8Array | PromiseLike<void> | NodeJS.Timeout | undefined = undefined;",
    [],
  );
  assert.deepEqual(a.unresolved, []);
  assert.ok(a.globals.includes("Math") && a.globals.includes("Buffer") && a.globals.includes("Record"));
});

test("a notebook definition shadows a global of the same name", () => {
  const a = analyzeStep("const v = name.length;", cells("const name = 'x';"));
  assert.deepEqual(inputNames(a), ["name"]);
});

test("foreach: item and index are implicit only when asked for", () => {
  const history = cells("const scaleBy = 2;", "const item = 'history item';");
  const a = analyzeStep("const y = item * scaleBy + index;", history, { implicit: ["item", "index"] });
  assert.deepEqual(inputNames(a), ["scaleBy"]);
  assert.deepEqual(a.implicit.sort(), ["index", "item"]);
  const b = analyzeStep("const y = item + index;", history);
  assert.deepEqual(inputNames(b), ["item"]);
  assert.deepEqual(unresolvedNames(b), ["index"]);
});

test("assignment to an earlier value is an input and is reported", () => {
  const history = cells("let counter = 0;", "function bump() { counter++; }", "let untouched = 1;");
  const a = analyzeStep("counter = 10;\nbump();", history);
  assert.deepEqual(inputNames(a), ["counter"]);
  assert.deepEqual(a.assigns, ["counter"]);
});

test("a function defined next to a name the notebook later redefines: conflict reported", () => {
  const history = cells("const base = 1;\nfunction scale(x: number) { return x * base; }", "const base = 2;");
  const a = analyzeStep("const v = scale(base);", history);
  assert.equal(a.conflicts.length, 1);
  assert.equal(a.conflicts[0].name, "base");
  assert.deepEqual(
    a.conflicts[0].definitions.map((d) => d.cellId),
    ["c1", "c2"],
  );
  // Without the step reading `base` itself there is only one meaning: no conflict.
  const b = analyzeStep("const v = scale(3);", history);
  assert.deepEqual(b.conflicts, []);
  assert.deepEqual(
    b.inputs.map((i) => [i.name, i.cellId]),
    [["base", "c1"]],
  );
});

test("mutually recursive functions and self-recursion", () => {
  const history = cells(
    "function isEven(n: number): boolean { return n === 0 ? true : isOdd(n - 1); }",
    "function isOdd(n: number): boolean { return n === 0 ? false : isEven(n - 1); }\nconst fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));",
  );
  const a = analyzeStep("const r = isEven(4) && fact(3) === 6;", history);
  assert.deepEqual(closureNames(a).sort(), ["fact", "isEven", "isOdd"]);
});

test("class expression names, named function expressions, labels and generics", () => {
  const history = cells("const T = 1; const K = 2; const outer = 3; const loop = 4;");
  const a = analyzeStep(
    [
      "const C = class Inner { make() { return new Inner(); } };",
      "const f = function self(n: number): number { return n ? self(n - 1) : 0; };",
      "loop: for (const x of [1]) { if (x) break loop; else continue loop; }",
      "function id<T>(x: T): T { return x; }",
      "type M<K extends string> = { [P in K]: P };",
      "type U<X> = X extends Array<infer E> ? E : never;",
    ].join("\n"),
    history,
  );
  assert.deepEqual(inputNames(a), []);
  assert.deepEqual(a.unresolved, []);
});

test("function overloads travel together", () => {
  const history = cells("function pad(x: string): string;\nfunction pad(x: number): string;\nfunction pad(x: unknown) { return String(x); }");
  const a = analyzeStep("pad(1)", history);
  assert.equal(a.closure.length, 1);
  assert.match(a.closure[0].source, /^function pad\(x: string\): string;\nfunction pad\(x: number\): string;\nfunction pad\(x: unknown\)/);
});

test("export modifiers are dropped from shipped source", () => {
  const a = analyzeStep("f()", cells("export function f() { return 1; }"));
  assert.equal(a.closure[0].source, "function f() { return 1; }");
});

test("var in nested blocks is function-scoped; let in blocks is not", () => {
  const history = cells("const v = 1; const w = 2;");
  const a = analyzeStep("function f() { if (true) { var v = 3; } return v; }\nfunction g() { { let w = 3; } return w; }", history);
  assert.deepEqual(inputNames(a), ["w"]);
});

test("destructuring assignment targets are writes", () => {
  const history = cells("let a = 1; let b = 2; const src = { a: 3, b: 4 };");
  const a = analyzeStep("({ a, b } = src);", history);
  assert.deepEqual(inputNames(a), ["a", "b", "src"]);
  assert.deepEqual(a.assigns.sort(), ["a", "b"]);
});

test("decorators, static initializers and computed keys are eager", () => {
  const history = cells("const key = 'k';", "const init = () => 5;", "class Holder { static v = init(); [key] = 1; }");
  const a = analyzeStep("new Holder();", history);
  assert.deepEqual(closureNames(a), ["init", "Holder"]);
  assert.deepEqual(inputNames(a), ["key"]);
});

test("syntax errors are reported, not thrown", () => {
  const a = analyzeStep("const = ;", []);
  assert.ok(a.syntaxErrors.length > 0);
  assert.equal(a.syntaxErrors[0].line, 0);
});

test("names used only in a namespace or the type side of a class", () => {
  const history = cells("namespace Geo { export const R = 6371; export function d() { return R; } }", "class Box { w = 1 }");
  const a = analyzeStep("const r = Geo.d();\nlet b: Box;", history);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.kind, c.typeOnly]),
    [
      ["Geo", "namespace", false],
      ["Box", "class", true],
    ],
  );
});

test("the body may redeclare a name its shipped functions read from the notebook", () => {
  const history = cells("const base = 10;\n", "function scale(x: number) { return x * base; }");
  const a = analyzeStep("const base = 5;\nconst s = scale(2) + base;", history);
  // scale still needs the notebook's base; the body's own base is an output.
  assert.deepEqual(
    a.inputs.map((i) => [i.name, i.cellId]),
    [["base", "c1"]],
  );
  assert.deepEqual(
    a.outputs.map((o) => o.name),
    ["base", "s"],
  );
  assert.deepEqual(a.conflicts, []);
});

test("type parameters shadow notebook types; `arguments` and accessors", () => {
  const history = cells("type T = string;\ninterface Row { a: number }", "const arguments2 = 1; const v = 2;");
  const a = analyzeStep(
    [
      "function first<T>(xs: T[]): T { return xs[0]; }",
      "function count() { return arguments.length; }",
      "const o = { get v() { return 1; }, set v(x: number) {} };",
      "type Keys<Row> = keyof Row;",
    ].join("\n"),
    history,
  );
  assert.deepEqual(a.closure, []);
  assert.deepEqual(a.inputs, []);
  assert.deepEqual(a.unresolved, []);
});

test("typeof in an expression is a runtime read", () => {
  const a = analyzeStep("const kind = typeof settings;", cells("const settings = {};"));
  assert.deepEqual(
    a.inputs.map((i) => [i.name, i.typeOnly]),
    [["settings", false]],
  );
});

test("a class implementing a notebook interface ships the interface type-only", () => {
  const history = cells("interface Shape { area(): number }", "const PI = 3.14;");
  const a = analyzeStep("class Circle implements Shape { constructor(private r: number) {} area() { return PI * this.r ** 2; } }", history);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.typeOnly]),
    [["Shape", true]],
  );
  assert.deepEqual(
    a.inputs.map((i) => i.name),
    ["PI"],
  );
});

test("values a type-only declaration mentions stay type-only", () => {
  const history = cells("const defaults = { a: 1 };", "type Opts = typeof defaults & { b: number };");
  const a = analyzeStep("let o: Opts;", history);
  assert.deepEqual(a.inputs, [{ name: "defaults", cellId: "c1", cellIndex: 0, typeOnly: true }]);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.typeOnly]),
    [["Opts", true]],
  );
});

test("`as const` is not a type name", () => {
  const a = analyzeStep("const modes = ['a', 'b'] as const;\nconst one = <const>['x'];", []);
  assert.deepEqual(a.unresolved, []);
});

test("export lists refer to types or values as declared", () => {
  const a = analyzeStep("type Local = number;\nconst v = 1;\nexport { Local, v };\nexport type { Shared };", cells("type Shared = string;"));
  assert.deepEqual(a.unresolved, []);
  assert.deepEqual(
    a.closure.map((c) => [c.names[0], c.typeOnly]),
    [["Shared", true]],
  );
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { toCellScript } from "../../src/session/engine/cell-script";
import { globalize, mergeDeclarations } from "../../src/session/engine/session-decls";
import { generatedToSourceLines } from "../../src/session/engine/source-map";
import { cellDirectives } from "../../src/session/engine/directives";
import { isCompleteCell } from "../../src/session/engine/complete-code";

test("declarations become assignments; functions are hoisted; imports are bound first", () => {
  const js =
    'import { a as b } from "m";\nconsole.log(f());\nconst x = 1, { y } = o;\nlet z;\nfunction f() { return x; }\nclass C {}\nfor (var i = 0; i < 2; i++) {}\nx + 1;';
  const s = toCellScript(js);
  assert.deepEqual(s.names.sort(), ["C", "b", "f", "i", "x", "y", "z"]);
  assert.equal(s.imports.length, 1);
  assert.deepEqual(s.imports[0], { specifier: "m", bindings: [{ local: "b", imported: "a" }] });
  const lines = s.script.split("\n");
  assert.match(lines[0], /^b = __nbscale__\.imports\[0\]\["b"\];$/);
  assert.match(lines[1], /^f = function f\(\)/, "the function is assigned before the code that calls it");
  assert.ok(s.script.includes("x = 1, ({ y } = o);"));
  assert.ok(s.script.includes("z = undefined;"));
  assert.ok(s.script.includes("C = class C {};"));
  assert.ok(s.script.includes("for (i = 0; i < 2; i++)"));
  assert.ok(s.script.includes("__nbscale__.last = (x + 1);"));
  assert.equal(s.hasValue, true);
  assert.equal(s.isAsync, false);
  // x is read by f, so it stays a live binding; z is the cell's own.
  assert.ok(!s.localized.includes("x") && s.localized.includes("z"));
});

test("a name an earlier cell's function uses is never kept in a local", () => {
  const js = "let t = 0;\nfor (let i = 0; i < 10; i++) t += i;";
  assert.deepEqual(toCellScript(js).localized, ["t"]);
  assert.deepEqual(toCellScript(js, { captured: new Set(["t"]) }).localized, []);
  assert.deepEqual(toCellScript("let e = 0; eval('e++');").localized, [], "eval may touch any name");
});

test("top-level await makes the body async; awaits inside functions don't", () => {
  assert.equal(toCellScript("const v = await p;").isAsync, true);
  assert.equal(toCellScript("for await (const x of g) {}").isAsync, true);
  assert.equal(toCellScript("async function f() { await p; }").isAsync, false);
});

test("module declarations become globals; the later cell's names replace the older ones", () => {
  assert.equal(
    globalize("export declare const a: number;\nexport interface P { x: number }\nexport {};\n"),
    "declare const a: number;\ninterface P { x: number }",
  );
  const prev = "declare const a: number, keep: string;\ninterface P { x: number }\ndeclare namespace N { const q = 1; }\ndeclare function f(): void;\n";
  const merged = mergeDeclarations("declare const a: string;\ndeclare namespace N { const r = 2; }\ntype P = { y: string };", prev);
  assert.ok(merged.startsWith("declare const a: string;"), "the newest declaration comes first");
  assert.ok(merged.includes("declare const keep: string;") && !merged.includes("a: number"));
  assert.ok(!merged.includes("interface P"), "a type redeclared replaces the interface");
  assert.ok(merged.includes("const q = 1") && merged.includes("const r = 2"), "namespaces merge, as in one program");
  assert.ok(merged.includes("declare function f(): void;"));
});

test("source-map lines, tslab directives, completeness", () => {
  // "AAAA;AACA;;AAEA": generated lines 0,1,3 map to source lines 0,1,3; line 2 takes the next mapped line.
  assert.deepEqual(generatedToSourceLines("AAAA;AACA;;AAEA"), [0, 1, 3, 3]);
  assert.deepEqual(cellDirectives("/** @module mylib */\nexport const a = 1;"), { jsx: false, module: "mylib" });
  assert.deepEqual(cellDirectives("//@jsx\nconst x = <b/>;"), { jsx: true });
  assert.deepEqual(cellDirectives("const x = 1; // @module no"), { jsx: false });
  assert.equal(isCompleteCell("function f() {").status, "incomplete");
  assert.equal(isCompleteCell("const s = `abc").status, "incomplete");
  assert.equal(isCompleteCell("f(1)").status, "complete");
  assert.equal(isCompleteCell("function f() {\n\n").status, "complete", "a blank line forces the cell to run (and show its error)");
});

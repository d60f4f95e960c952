"""Cells mean what the same code means as one program.

Each case is everyday TypeScript split over cells. The kernel runs the cells
one by one over the real Jupyter protocol; the reference is the same cells
joined into one file, compiled by the kernel's TypeScript and run as a plain
Node ES module. Their printed output must be the same. Cases that use the
notebook's freedoms (redeclaring a name in a later cell) have no one-program
equivalent; they give the expected output instead.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import KernelSession

ROOT = Path(__file__).resolve().parent.parent
TS = ROOT / "kernel" / "node_modules" / "typescript"

# (id, cells, expected-or-None)
CASES: list[tuple[str, list[str], str | None]] = [
    ("shorthand-property", ["const n = 1000;", "const r = { n };\nconsole.log(JSON.stringify(r));"], None),
    ("shorthand-from-destructuring", ["const { a, b } = { a: 1, b: 2 };", "console.log(JSON.stringify({ a, b }));"], None),
    ("array-destructuring-rest", ["const [head, ...tail] = [1, 2, 3];", "console.log(head, JSON.stringify(tail));"], None),
    ("closure-over-earlier-let", ["let count = 0;\nfunction inc() { count++; }", "inc(); inc();", "console.log(count);"], None),
    ("later-assignment-seen-by-closure", ["let base = 1;\nconst get = () => base;", "base = 5;", "console.log(get());"], None),
    (
        "class-extended-later",
        [
            'class Animal {\n  constructor(public name: string) {}\n  speak() { return this.name + " makes a sound"; }\n}',
            'class Dog extends Animal {\n  speak() { return this.name + " barks"; }\n}',
            'console.log(new Dog("Rex").speak(), new Dog("Rex") instanceof Animal);',
        ],
        None,
    ),
    ("redeclared-const-new-type", ["const v = 1;", 'const v = "two";\nconsole.log(v.length);'], "3\n"),
    ("redeclared-function", ["function f() { return 1; }", "function f() { return 2; }", "console.log(f());"], "2\n"),
    ("redeclared-class", ["class K { a = 1 }", "class K { b = 2 }", "console.log(JSON.stringify(new K()));"], '{"b":2}\n'),
    ("rerun-let-cell", ["let total = 0;\ntotal += 5;", "let total = 0;\ntotal += 5;", "console.log(total);"], "5\n"),
    ("numeric-enum", ["enum Color { Red, Green = 5, Blue }", "console.log(Color.Blue, Color[5]);"], None),
    ("string-enum", ['enum Dir { Up = "UP", Down = "DOWN" }', "const d: Dir = Dir.Down;\nconsole.log(d);"], None),
    ("const-enum", ["const enum Flag { A = 1, B = 2 }", "console.log(Flag.A | Flag.B);"], None),
    (
        "namespace",
        ["namespace Geo {\n  export const unit = 2;\n  export function area(r: number) { return unit * r * r; }\n}", "console.log(Geo.area(3));"],
        None,
    ),
    ("namespace-merging", ["namespace M { export const a = 1; }", "namespace M { export const b = 2; }", "console.log(M.a, M.b);"], None),
    ("generic-function", ["function first<T>(xs: T[]): T | undefined { return xs[0]; }", "const f1: number | undefined = first([4, 5]);\nconsole.log(f1);"], None),
    (
        "generic-class",
        ["class Box<T> {\n  constructor(readonly value: T) {}\n  map<U>(f: (t: T) => U): Box<U> { return new Box(f(this.value)); }\n}", 'console.log(new Box(2).map((x) => x * 10).map(String).value + "!");'],
        None,
    ),
    ("interface-across-cells", ["interface P { x: number; y: number }", "const p: P = { x: 1, y: 2 };\nconsole.log(p.x + p.y);"], None),
    ("interface-extended-later", ["interface A1 { a: number }", "interface B1 extends A1 { b: number }\nconst ab: B1 = { a: 1, b: 2 };\nconsole.log(ab.a + ab.b);"], None),
    (
        "union-narrowing",
        ['type Shape = { kind: "sq"; s: number } | { kind: "circle"; r: number };', 'function area(x: Shape) { return x.kind === "sq" ? x.s * x.s : 3 * x.r * x.r; }', 'console.log(area({ kind: "sq", s: 3 }), area({ kind: "circle", r: 1 }));'],
        None,
    ),
    (
        "standard-decorators",
        [
            "function logged(value: any, ctx: ClassMethodDecoratorContext) {\n  return function (this: any, ...args: any[]) { console.log('call', String(ctx.name)); return value.apply(this, args); };\n}",
            "class C {\n  @logged m() { return 1; }\n}",
            "console.log(new C().m());",
        ],
        None,
    ),
    (
        "using-in-block",
        ['class Res { [Symbol.dispose]() { console.log("disposed"); } }', '{\n  using r = new Res();\n  console.log("inside");\n}\nconsole.log("after");'],
        None,
    ),
    ("getters-setters-private", ["class T {\n  #v = 1;\n  get v() { return this.#v; }\n  set v(x: number) { this.#v = x * 2; }\n}", "const t = new T();\nt.v = 5;\nconsole.log(t.v);"], None),
    ("spreads", ["const baseObj = { a: 1 };\nconst arr = [1, 7, 2];", "const more = { ...baseObj, b: 2 };\nconsole.log(JSON.stringify(more), Math.max(...arr));"], None),
    ("namespace-import-later", ['import * as path from "node:path";', 'console.log(path.join("a", "b"));'], None),
    ("named-import-later", ['import { basename } from "node:path";', 'console.log(basename("/x/y.txt"));'], None),
    ("default-import-later", ['import fs from "node:fs";', "console.log(typeof fs.readFileSync);"], None),
    ("imported-type-later", ['import type { Stats } from "node:fs";\nimport { statSync } from "node:fs";', 'const st: Stats = statSync(".");\nconsole.log(st.isDirectory());'], None),
    ("namespace-type-later", ['import * as fsNs from "node:fs";', 'const st2: fsNs.Stats = fsNs.statSync(".");\nconsole.log(st2.isFile());'], None),
    ("top-level-for-await", ["async function* gen() { yield 1; yield 2; }", "for await (const x of gen()) console.log(x);"], None),
    ("top-level-await", ["const v2 = await Promise.resolve(42);", "console.log(v2 + 1);"], None),
    ("async-function-later", ["async function slow(x: number) { await new Promise((r) => setTimeout(r, 5)); return x * 2; }", "console.log(await slow(21));"], None),
    ("generator", ["function* count3() { yield 1; yield 2; yield 3; }", "console.log([...count3()].join(','));"], None),
    ("map-and-set", ["const m = new Map<string, number>([['a', 1]]);\nconst s = new Set([1, 2, 2]);", "m.set('b', 2);\nconsole.log(m.size, s.size, [...m.keys()].join(''));"], None),
    ("to-sorted", ["const nums = [3, 1, 2];", "console.log(JSON.stringify(nums.toSorted()), JSON.stringify(nums));"], None),
    (
        "inferred-type-predicate",
        ["const isStr = (x: unknown) => typeof x === 'string';", "const strs = ['a', 1, 'b'].filter(isStr);\nconsole.log(strs.map((s) => s.toUpperCase()).join(''));"],
        None,
    ),
    ("no-infer", ["function pick<T extends string>(xs: T[], d: NoInfer<T>) { return xs.includes(d) ? d : xs[0]; }", "console.log(pick(['a', 'b'], 'b'));"], None),
    ("satisfies", ["const cfg = { a: 1, b: 'x' } satisfies Record<string, number | string>;", "console.log(cfg.a + 1, cfg.b.toUpperCase());"], None),
    ("optional-chaining", ["const deep: { a?: { b?: number } } = { a: {} };", "console.log(deep.a?.b ?? 'none');"], None),
    ("var-in-for", ["for (var i = 0; i < 3; i++) {}", "console.log(i);"], None),
    ("var-in-block", ["if (true) { var hv = 7; }", "console.log(hv);"], None),
    ("function-hoisting", ['console.log(later());\nfunction later() { return "hoisted"; }'], None),
    ("static-block-and-private-method", ["class S {\n  static ready: boolean;\n  static { S.ready = true; }\n  #secret() { return 9; }\n  reveal() { return this.#secret(); }\n}", "console.log(S.ready, new S().reveal());"], None),
    ("iterator-class", ["class Range {\n  constructor(private n: number) {}\n  *[Symbol.iterator]() { for (let i = 0; i < this.n; i++) yield i; }\n}", "console.log([...new Range(4)].join(''));"], None),
    ("tagged-template", ["const tag = (s: TemplateStringsArray, ...v: unknown[]) => s.raw.join('|') + v.length;", "console.log(tag`a${1}b${2}c`);"], None),
    ("bigint", ["const big = 2n ** 64n;", "console.log(String(big + 1n));"], None),
    ("shorthand-in-method", ["const k = 3;", "const o = { k, f() { return k * 2; } };\nconsole.log(o.k, o.f());"], None),
    ("destructuring-defaults-renames", ["const { x: ex = 5, y: why = 6 } = { x: 1 } as { x?: number; y?: number };", "console.log(ex, why);"], None),
    ("closures-in-loop", ["const fns: Array<() => number> = [];\nfor (let i = 0; i < 3; i++) fns.push(() => i);", "console.log(fns.map((f) => f()).join(''));"], None),
    ("custom-error-across-cells", ["class AppError extends Error {\n  constructor(public code: number) { super('app ' + code); this.name = 'AppError'; }\n}", "try { throw new AppError(7); } catch (e) { console.log(e instanceof AppError, (e as AppError).code, (e as Error).message); }"], None),
    ("export-const", ["export const exported = 5;", "console.log(exported * 2);"], None),
    ("abstract-class", ["abstract class Base { abstract id(): string; hello() { return 'hi ' + this.id(); } }", "class Impl extends Base { id() { return 'impl'; } }\nconsole.log(new Impl().hello());"], None),
    ("top-level-loop-over-binding", ["let acc = 0;", "for (let j = 0; j < 1000; j++) acc += j;\nconsole.log(acc);"], None),
    ("object-groupby-free-reduce", ["const people = [{ n: 'a', g: 1 }, { n: 'b', g: 2 }, { n: 'c', g: 1 }];", "const byG = people.reduce<Record<number, string[]>>((m, p) => ((m[p.g] ??= []).push(p.n), m), {});\nconsole.log(JSON.stringify(byG));"], None),
]


@pytest.fixture(scope="module")
def sem_kernel(tmp_path_factory: Any) -> Any:
    k = KernelSession(cwd=str(tmp_path_factory.mktemp("semantics")))
    yield k
    k.close()


def reference_output(cells: list[str], workdir: Path) -> str:
    """The cells as one program: compiled by the kernel's TypeScript, run as a Node ES module."""
    src = workdir / "program.ts"
    src.write_text("\n".join(cells) + "\n")
    script = (
        f"const ts = require({str(TS)!r});"
        "const fs = require('fs');"
        f"const out = ts.transpileModule(fs.readFileSync({str(src)!r}, 'utf8'), {{ compilerOptions: {{ module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }} }});"
        f"fs.writeFileSync({str(workdir / 'program.mjs')!r}, out.outputText);"
    )
    subprocess.run(["node", "-e", script], check=True, timeout=60)
    run = subprocess.run(["node", str(workdir / "program.mjs")], capture_output=True, text=True, timeout=60, cwd=workdir)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,cells,expected", CASES, ids=[c[0] for c in CASES])
def test_cells_mean_what_one_program_means(sem_kernel: KernelSession, tmp_path: Path, name: str, cells: list[str], expected: str | None) -> None:
    want = expected if expected is not None else reference_output(cells, tmp_path)
    assert want.strip(), f"{name}: the reference printed nothing, so the case would check nothing"
    got = ""
    for i, cell in enumerate(cells):
        reply, msgs = sem_kernel.run(cell, timeout=60)
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert reply["content"]["status"] == "ok", (name, i, cell, errors)
        got += sem_kernel.stdout(msgs)
    assert got == want, (name, got, want)


def run_ok(k: KernelSession, code: str) -> str:
    reply, msgs = k.run(code, timeout=60)
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", (code, errors)
    return k.stdout(msgs)


def run_error(k: KernelSession, code: str) -> dict[str, Any]:
    reply, msgs = k.run(code, timeout=60)
    assert reply["content"]["status"] == "error", (code, reply["content"])
    return reply["content"]


def test_notebook_imports_its_own_typescript_modules_and_sees_edits(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "util.ts").write_text("export const twice = (x: number): number => x * 2;\n")
    (lib / "clean.ts").write_text('import { twice } from "./util";\nexport function clean(s: string): string { return s.trim() + ":" + twice(2); }\n')
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert run_ok(k, 'import { clean } from "./lib/clean";\nconsole.log(clean("  a "));') == "a:4\n"
        # The checker sees the module's types: a wrong argument is refused before anything runs.
        err = run_error(k, "clean(5);")
        assert err["ename"] == "TSError" and "not assignable" in err["evalue"], err
        # Edit a module the imported one imports: importing again gives the new code.
        (lib / "util.ts").write_text("export const twice = (x: number): number => x * 20;\n")
        assert run_ok(k, 'import { clean } from "./lib/clean";\nconsole.log(clean("b"));') == "b:40\n"
        # A step ships the modules with the cell: a local worker and the kernel target run the new code.
        run_ok(k, '%%step shipped\nconst viaWorker = clean("w");')
        run_ok(k, '%%step inKernel --on kernel\nconst viaKernel = clean("k");')
        assert run_ok(k, "console.log(viaWorker, viaKernel);") == "w:40 k:40\n"
        # A type error inside the module names the module's file and line.
        (lib / "util.ts").write_text('export const twice = (x: number): number => "no";\n')
        err = run_error(k, 'import { clean } from "./lib/clean";')
        assert "lib/util.ts" in err["evalue"] and "1:" in err["evalue"], err
    finally:
        k.close()


def test_esm_only_package_and_json_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "node_modules" / "esm-only-pkg"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text('{"name": "esm-only-pkg", "version": "1.0.0", "type": "module", "exports": {".": {"types": "./index.d.ts", "import": "./index.js"}}}')
    (pkg / "index.js").write_text('export const hello = (n) => "hello " + n;\nexport default 7;\n')
    (pkg / "index.d.ts").write_text("export declare const hello: (n: string) => string;\ndeclare const d: number;\nexport default d;\n")
    (tmp_path / "data.json").write_text('{"rows": [1, 2, 3]}')
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert run_ok(k, 'import seven, { hello } from "esm-only-pkg";\nconsole.log(hello("esm"), seven + 1);') == "hello esm 8\n"
        assert run_ok(k, 'import data from "./data.json";\nconsole.log(data.rows.length);') == "3\n"
        assert run_ok(k, "console.log(hello(String(data.rows[0])));") == "hello 1\n"
    finally:
        k.close()


def test_tslab_module_and_jsx_directives(tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        run_ok(k, "/** @module mylib */\nexport const greet = (n: string): string => `hi ${n}`;")
        assert run_ok(k, 'import { greet } from "./mylib";\nconsole.log(greet("tslab"));') == "hi tslab\n"
        out = run_ok(
            k,
            "/** @jsx */\nconst React = { createElement: (t: any, p: any, ...c: any[]) => ({ t, c }) };\n"
            "declare global { namespace JSX { interface IntrinsicElements { [k: string]: any } } }\n"
            'const el = <b>bold</b>;\nconsole.log(JSON.stringify(el));',
        )
        assert out == '{"t":"b","c":["bold"]}\n', out
        assert run_ok(k, 'import * as tslab from "tslab";\nconsole.log(typeof tslab.display.html);') == "function\n"
    finally:
        k.close()


def test_errors_keep_the_session(tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        run_ok(k, "let kept = 1;\nconst other = 'x';")
        # A type error runs nothing: every name keeps its value.
        err = run_error(k, "kept = 2;\nconst broken: number = 'no';")
        assert err["ename"] == "TSError" and err["evalue"].startswith("2:7"), err
        # A syntax error likewise.
        err = run_error(k, "kept = 3;\nconst = ;")
        assert err["ename"] == "TSError" and err["evalue"].startswith("2:"), err
        assert run_ok(k, "console.log(kept);") == "1\n"
        # A runtime error keeps what ran before the throw, and names the cell line.
        err = run_error(k, "kept = 4;\nlet later = 5;\nthrow new RangeError('mid-cell');\nkept = 6;")
        assert err["ename"] == "RangeError" and any("line 3" in l for l in err["traceback"]), err
        assert run_ok(k, "console.log(kept, later);") == "4 5\n"
        # Redeclaring with another type: later cells check against the new type.
        run_ok(k, "const other = 42;")
        err = run_error(k, "other.toUpperCase();")
        assert "toUpperCase" in err["evalue"], err
        assert run_ok(k, "console.log(other + 1);") == "43\n"
    finally:
        k.close()


def test_a_top_level_loop_runs_on_locals_and_leaves_its_result_in_the_binding(tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        run_ok(k, "let t = 0;\nfor (let i = 0; i < 2e6; i++) t += i;")
        assert run_ok(k, "console.log(t);") == f"{sum(range(2_000_000))}\n"
        # A name an earlier cell's function uses stays a live binding: the function sees every write.
        run_ok(k, "let seen = 0;\nconst peek = () => seen;")
        assert run_ok(k, "let seen = 0;\nfor (let i = 0; i < 10; i++) { seen += i; if (i === 5) console.log(peek()); }") == "15\n"
        # A throw mid-loop still leaves the value reached.
        run_error(k, "let u = 0;\nfor (let i = 0; i < 100; i++) { u += 1; if (i === 9) throw new Error('stop'); }")
        assert run_ok(k, "console.log(u);") == "10\n"
    finally:
        k.close()


def test_the_kernel_runs_on_the_node_it_was_given(tmp_path: Path) -> None:
    """The test command runs these suites twice: on the machine's Node and on Node 24 (NBSCALE_NODE)."""
    node = os.environ.get("NBSCALE_EXPECT_NODE") or "node"
    want = subprocess.run([node, "-p", "process.versions.node"], capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert run_ok(k, "console.log(process.versions.node);").strip() == want
        run_ok(k, "%%step where\nconst workerNode = process.versions.node;")
        assert run_ok(k, "console.log(workerNode);").strip() == want, "workers run on the kernel's Node"
    finally:
        k.close()

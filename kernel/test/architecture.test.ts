/**
 * The layering rules of kernel/src, read from the sources' own imports
 * (static, `import()` and `require()`): nothing imports upward. The store and
 * the Jupyter transport know no session, step, flow or CLI; backends know no
 * session; the worker knows no backend; only the CLI and the kernel's entry
 * import the CLI.
 *
 * `KNOWN` lists the imports that break a rule today, each by file: debt that
 * issue 16 (one step runtime) removes. The test fails on any import that
 * breaks a rule and is not listed, and on a listed one that is gone, so the
 * list only ever shrinks and says exactly what is left.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";

const SRC = join(__dirname, "..", "..", "src");

/** What each layer (the first folder under src/, or a top-level file) may not import. */
const RULES: Record<string, { forbidden: string[]; why: string }> = {
  store: { forbidden: ["session", "step", "flow", "cli", "kernel.ts", "backends", "worker", "magics", "protocol", "client"], why: "the store knows no caller" },
  protocol: {
    forbidden: ["session", "step", "flow", "cli", "kernel.ts", "backends", "worker", "magics", "store", "client"],
    why: "the Jupyter transport knows no caller",
  },
  backends: { forbidden: ["session", "step", "flow", "cli", "kernel.ts"], why: "backends know no session and no step runtime above them" },
  // The worker reads sizes with the option grammar's units (magics/units.ts), as everyone does.
  worker: { forbidden: ["backends", "session", "step", "flow", "cli", "kernel.ts"], why: "the worker knows no backend" },
  step: { forbidden: ["session", "flow", "cli", "kernel.ts", "protocol"], why: "the step runtime knows no notebook session, flow or CLI" },
  session: { forbidden: ["cli", "kernel.ts"], why: "the session knows no CLI" },
  flow: { forbidden: ["cli", "kernel.ts", "session"], why: "flows know no CLI or notebook session" },
  client: { forbidden: ["cli", "kernel.ts", "session"], why: "the notebook's library knows no kernel" },
  magics: { forbidden: ["cli", "kernel.ts", "session", "step", "flow", "backends"], why: "the option grammar knows no runtime" },
};

/** Imports that break a rule today: `file -> layer imported`, each counted once per file. */
const KNOWN = new Set([
  "step/dispatch.ts -> session",
  "step/failures.ts -> session",
  "step/foreach-input.ts -> session",
  "step/foreach-progress.ts -> session",
  "step/foreach.ts -> session",
  "step/lazy.ts -> session",
  "step/package.ts -> session",
  "step/remote-error.ts -> session",
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

const layerOf = (rel: string) => rel.split(sep)[0];

/** `file -> layer` for every relative import of a file into another layer. */
function crossings(): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of sources(SRC)) {
    const rel = relative(SRC, file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\(\s*|\brequire\(\s*)["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = normalize(join(dirname(rel), m[1]));
      if (target.startsWith("..")) continue;
      // A top-level file (kernel.ts, version.ts) is a layer of its own.
      const to = target.includes(sep) ? layerOf(target) : target.replace(/(\.ts)?$/, ".ts");
      if (to !== layerOf(rel)) out.set(`${rel.split(sep).join("/")} -> ${to}`, layerOf(rel));
    }
  }
  return out;
}

test("no layer of kernel/src imports upward, beyond the debt listed here", () => {
  const seen = crossings();
  assert.ok(seen.size > 50, `the import scan found only ${seen.size} crossings: is SRC (${SRC}) right?`);
  const broken: string[] = [];
  for (const [edge, from] of seen) {
    const rule = RULES[from];
    const to = edge.split(" -> ")[1];
    if (rule?.forbidden.includes(to) && !KNOWN.has(edge)) broken.push(`${edge} (${rule.why})`);
  }
  assert.deepEqual(broken, [], "imports that go against the layering");
  const gone = [...KNOWN].filter((edge) => !seen.has(edge));
  assert.deepEqual(gone, [], "listed debt that is paid: remove it from KNOWN");
});

test("the scan sees a static import, a dynamic import and a require", () => {
  const seen = crossings();
  assert.ok(seen.has("kernel.ts -> session"), "static import of the kernel's entry");
  assert.ok(seen.has("cli/commands/run.ts -> flow"), "dynamic import() in a CLI command");
  assert.ok(seen.has("store/backends.ts -> store") === false, "imports within a layer are not crossings");
});

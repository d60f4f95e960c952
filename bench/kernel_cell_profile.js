// Where a trivial cell's time goes in nbscale's engine, without the protocol:
// the kernel's own Executor (kernel/dist/src/session/executor.js), the kernel's
// options, N cells of `1 + 1` and of `const xK: number = K;` after a warm-up.
// Prints per-cell p50 of check-only (type check + emit) and of execute (check +
// run), and the number of source files in the language service's program.
//
//   node bench/kernel_cell_profile.js [N]                       # numbers
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/kernel_cell_profile.js   # where
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const os = require("node:os");
const { Executor } = require("../kernel/dist/src/session/executor.js");
const { PACKAGE_DIR } = require("../kernel/dist/src/version.js");

const n = Number(process.argv[2] || 100);
const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-cellprof-"));
const ex = new Executor({
  cwd,
  packageDir: PACKAGE_DIR,
  prelude: "declare function prompt(message?: string, defaultValue?: string): string | null;\n",
  preludeValues: { prompt: () => null },
  builtinModules: { nbscale: () => ({}), tslab: () => ({}) },
});
const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function main() {
  let t = performance.now();
  ex.warmUp();
  const warm = performance.now() - t;
  const res = { warm_up_ms: +warm.toFixed(1) };
  for (const [label, code] of [["trivial", () => "1 + 1"], ["typed", (i) => `const x${i}: number = ${i};`]]) {
    const check = [], exec = [];
    for (let i = 0; i < n + 5; i++) {
      t = performance.now();
      ex.check(code(`c${i}`));
      const c = performance.now() - t;
      t = performance.now();
      const r = await ex.execute(code(i));
      const e = performance.now() - t;
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      if (i >= 5) { check.push(c); exec.push(e); }
    }
    res[label] = { check_p50_ms: +p50(check).toFixed(2), execute_p50_ms: +p50(exec).toFixed(2) };
  }
  try {
    const files = ex["cc"].service.getProgram().getSourceFiles();
    res.program_source_files = files.length;
    res.program_lib_files = files.filter((f) => /typescript[\\/]lib[\\/]lib\./.test(f.fileName)).length;
    res.program_types_node_files = files.filter((f) => /@types[\\/]node[\\/]/.test(f.fileName)).length;
  } catch (e) { res.program_source_files = String(e); }
  console.log(JSON.stringify(res));
  fs.rmSync(cwd, { recursive: true, force: true });
}
main().catch((e) => { console.error(e); process.exit(1); });

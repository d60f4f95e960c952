/**
 * What `nbscale run` loads to run a local flow (issue 16): the modules of the
 * runner process and of each flow worker, counted, and whether the TypeScript
 * compiler, the AWS SDK or zeromq is among them (none is needed: the flow is
 * in the compile cache, and nothing runs remotely). A second run with one
 * step on Slurm's path (compiled only, not submitted) shows what choosing a
 * remote target adds, by loading the runner's Slurm target module. And the
 * kernel's modules at start, before its first cell (no compiler, no AWS SDK).
 *
 *     node bench/startup_modules.js        # writes bench/results/startup_modules.json
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'kernel', 'bin', 'nbscale.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nbscale-modules-'));
const dump = path.join(tmp, 'dumps');
fs.mkdirSync(dump);
// Preloaded into the runner and every worker it forks: lists require.cache at exit.
const preload = path.join(tmp, 'preload.js');
// A worker is SIGKILLed when the run is over (no exit event): it also lists them whenever it replies.
fs.writeFileSync(
  preload,
  `const save = () => require("fs").writeFileSync(${JSON.stringify(dump)} + "/" + process.pid + ".json", JSON.stringify({ argv: process.argv.slice(1), modules: Object.keys(require.cache) }));
process.on("exit", save);
if (process.send) { const send = process.send.bind(process); process.send = (...a) => { save(); return send(...a); }; }
`
);
fs.writeFileSync(
  path.join(tmp, 'flow.ts'),
  `import { flow, step } from "nbscale";
const a = step("a", {}, () => { const x = 1; return { x }; });
const b = step("b", { inputs: { x: a.x } }, ({ x }) => { const y = x + 1; return { y }; });
const c = step("c", { inputs: { y: b.y } }, ({ y }) => { const z = y * 2; return { z }; });
export default flow("modules", [a, b, c]);
`
);
const env = {
  ...process.env,
  NBSCALE_DATASTORE: path.join(tmp, 'store'),
  NBSCALE_CACHE_DIR: path.join(tmp, 'cache')
};
// NODE_OPTIONS, not -r: the runner starts its workers with execArgv of its own.
const run = () =>
  execFileSync(process.execPath, [CLI, 'run', 'flow.ts', '--json'], {
    cwd: tmp,
    env: { ...env, NODE_OPTIONS: `--require ${preload}` },
    stdio: ['ignore', 'pipe', 'pipe']
  });
run(); // fills the compile cache
for (const f of fs.readdirSync(dump)) fs.rmSync(path.join(dump, f));
run();

const kinds = mods => ({
  modules: mods.length,
  nbscale_modules: mods.filter(m =>
    m.includes(`${path.sep}kernel${path.sep}dist${path.sep}`)
  ).length,
  typescript: mods.some(m => m.includes(`${path.sep}typescript${path.sep}`)),
  aws_sdk: mods.some(m => m.includes(`${path.sep}@aws-sdk${path.sep}`)),
  zeromq: mods.some(m => m.includes(`${path.sep}zeromq${path.sep}`))
});
const procs = fs
  .readdirSync(dump)
  .map(f => JSON.parse(fs.readFileSync(path.join(dump, f), 'utf8')));
const runner = procs.find(p => p.argv.some(a => a.endsWith('nbscale.js')));
const workers = procs.filter(p => p !== runner);
const result = {
  benchmark:
    'modules loaded by `nbscale run` of a 3-step local flow (compile cache warm)',
  runner: kinds(runner.modules),
  workers: workers.map(w => kinds(w.modules))
};
// The kernel's own modules when it starts (it answers kernel_info with these; the compiler loads on a timer after).
const kernelProbe = execFileSync(
  process.execPath,
  [
    '-e',
    `require(${JSON.stringify(path.join(ROOT, 'kernel', 'dist', 'src', 'kernel.js'))}); console.log(JSON.stringify(Object.keys(require.cache)))`
  ],
  { encoding: 'utf8' }
);
result.kernel_at_start = kinds(JSON.parse(kernelProbe));
// What a flow with a Slurm step adds to the runner: its target module, loaded only then (flow/remote-targets.ts).
const before = new Set(Object.keys(require.cache));
require(path.join(ROOT, 'kernel', 'dist', 'src', 'flow', 'remote-slurm.js'));
result.slurm_target_adds = kinds(
  Object.keys(require.cache).filter(m => !before.has(m))
);
fs.rmSync(tmp, { recursive: true, force: true });
console.log(JSON.stringify(result, null, 2));
const out = path.join(ROOT, 'bench', 'results');
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(
  path.join(out, 'startup_modules.json'),
  JSON.stringify(result, null, 2) + '\n'
);

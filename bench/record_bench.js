#!/usr/bin/env node
/**
 * Recording benchmark (issue 4), on the kernel's own code path: a real
 * Executor (tslab) runs the cells, the kernel's Recorder records them, the
 * `%restore` handler reads back. Ratios are against raw write+fsync and raw
 * read of the same bytes, measured in the same run on the same disk.
 *
 *   node bench/record_bench.js [--mb 256] [--reps 5] [--trivial 100] [--dir DIR] [--out FILE]
 *
 * The machine is shared and its disk and CPU speed drift, so each large
 * measurement is repeated --reps times, every repetition right after its own
 * raw baseline (interleaved); a ratio is taken per pair and the median, min
 * and max are reported. Load averages before and after go into the result.
 *
 * A full GC runs before every timed operation (raw or nbscale alike). Each
 * 256 MB allocation starts V8's incremental marking of the kernel's large
 * heap (the TypeScript compiler's ~200 MB); without the settle, the marking
 * started by one measurement runs on into the next and is billed to it —
 * the raw read's spilled into every restore. With it, each operation pays
 * for the marking its own allocation starts, and no more.
 *
 * Needs the kernel built (cd kernel && npx tsc -p tsconfig.json).
 * Numbers are reported, not asserted; the JSON result goes to --out
 * (default bench/results/record_bench.json).
 */
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const os = require("node:os");

const DIST = path.join(__dirname, "..", "kernel", "dist", "src");
const { Executor } = require(path.join(DIST, "session", "executor.js"));
const { Recorder } = require(path.join(DIST, "session", "recording.js"));
const { CellMagics } = require(path.join(DIST, "session", "magic-dispatch.js"));
const { register: registerRestore } = require(path.join(DIST, "session", "magic-handlers", "restore.js"));
const { PACKAGE_DIR } = require(path.join(DIST, "version.js"));

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const MB = Number(arg("mb", "256"));
const TRIVIAL = Number(arg("trivial", "100"));
const REPS = Math.max(1, Number(arg("reps", "5")));
const SIZE = MB << 20;
const SLICE = 8 << 20;
const TMP = arg("dir", path.join(__dirname, ".tmp"));
fs.mkdirSync(TMP, { recursive: true });
const ROOT = fs.mkdtempSync(path.join(TMP, "rb-"));
const OUT = arg("out", path.join(__dirname, "results", "record_bench.json"));

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
require("node:v8").setFlagsFromString("--expose-gc");
const fullGc = require("node:vm").runInNewContext("gc");
/** Finishes any GC work earlier operations started, so the next measurement pays only for its own. */
const settle = () => fullGc();
const mbps = (bytes, ms) => Math.round(bytes / (1 << 20) / (ms / 1000));
const median = (xs) => pct(xs, 50);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const stats = (xs, digits = 2) => ({
  median: +median(xs).toFixed(digits),
  min: +Math.min(...xs).toFixed(digits),
  max: +Math.max(...xs).toFixed(digits),
});
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

function rawWrite(file, bytes) {
  settle();
  const t = now();
  const fd = fs.openSync(file, "w");
  for (let off = 0; off < bytes.byteLength; off += SLICE) fs.writeSync(fd, bytes, off, Math.min(SLICE, bytes.byteLength - off));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  return now() - t;
}

function rawRead(file, size) {
  const t = now();
  const buf = Buffer.allocUnsafeSlow(size);
  const fd = fs.openSync(file, "r");
  for (let off = 0; off < size; off += SLICE) fs.readSync(fd, buf, off, Math.min(SLICE, size - off), off);
  fs.closeSync(fd);
  return now() - t;
}

let execCount = 0;
function fakeMsg() {
  execCount++;
  return { header: { msg_id: `bench-${execCount}`, msg_type: "execute_request" }, metadata: {}, content: {} };
}

async function main() {
  const nbDir = path.join(ROOT, "notebook");
  fs.mkdirSync(nbDir, { recursive: true });
  const executor = new Executor({ cwd: nbDir, packageDir: PACKAGE_DIR, builtinModules: {} });
  const warnings = [];
  const recorder = new Recorder({ cwd: nbDir, env: {}, executor, warn: (_p, t) => warnings.push(t) });
  const magics = new CellMagics();
  registerRestore(magics, { recorder, executor });

  /** Runs and records a cell; `big` cells settle GC first (see the header). */
  async function cell(code, big = false) {
    const msg = fakeMsg();
    const started = new Date();
    const outcome = await executor.execute(code);
    if (!outcome.ok) throw new Error(`${code}: ${outcome.error.evalue}`);
    if (big) settle();
    const t0 = now();
    const pending = recorder.record({ msg, code, executionCount: execCount, started, outcome });
    const snapshotMs = now() - t0; // on the cell's critical path (before the reply)
    await pending;
    return { snapshotMs, totalMs: now() - t0 };
  }

  // Warm up the converter and the store.
  await cell("const warm = 1");

  // --- trivial cells ---
  const trivial = { snapshot: [], total: [] };
  for (let i = 0; i < TRIVIAL; i++) {
    const r = await cell(`${i} + 1`);
    trivial.snapshot.push(r.snapshotMs);
    trivial.total.push(r.totalMs);
  }

  // --- 256 MB Float64Array ---
  const loadBefore = os.loadavg();
  await cell(`let big = new Float64Array(${SIZE / 8}).map((_, i) => i * 1.000001 - 7)`);
  const bigBytes = new Uint8Array(executor.valueOf("big").buffer);
  const rawFile = path.join(ROOT, "raw.bin");

  // A new value of a new size each time (the previous version's size differs,
  // so the store takes the one-pass write: hashed while written).
  const freshBytes = (i) => SIZE + 8 * (i + 1);
  const write = { raw: [], rec: [], ratio: [] };
  for (let i = 0; i < REPS; i++) {
    const rawW = rawWrite(rawFile, bigBytes);
    fs.rmSync(rawFile);
    const r = await cell(`let big2 = new Float64Array(${SIZE / 8 + 1 + i}).map((_, i) => i / 3 + ${i})`, true);
    write.raw.push(rawW);
    write.rec.push(r.totalMs);
    write.ratio.push(rawW / SIZE / (r.totalMs / freshBytes(i)));
  }
  // A changed value of the same size as the previous version: hashed first, then written.
  rawWrite(rawFile, bigBytes);
  const rawW1 = rawWrite(rawFile, bigBytes);
  fs.rmSync(rawFile);
  const sameSize = await cell("big[0] = 42", true);
  const unchanged = await cell("big[0] = 42", true); // same bytes again: hash only, no write

  // --- restore (%restore big2@N), through the magic handler, vs a raw read of a file of the same bytes ---
  await cell("const dummy = 0");
  rawWrite(rawFile, bigBytes); // in the page cache, as the just-recorded blob is
  // CPU time (all threads) says what a run costs whatever else the machine is doing.
  const read = { raw: [], restore: [], ratio: [], rawCpu: [], restoreCpu: [] };
  for (let i = 0; i < REPS; i++) {
    settle();
    let c0 = cpuMs();
    const rawR = rawRead(rawFile, SIZE);
    read.rawCpu.push(cpuMs() - c0);
    settle();
    c0 = cpuMs();
    const rt = now();
    const r = await magics.match(`%restore big2@${i + 1}`).run({ executor, msg: fakeMsg(), kernel: null });
    const restoreMs = now() - rt;
    read.restoreCpu.push(cpuMs() - c0);
    if (!r.ok) throw new Error(`restore failed: ${r.error.evalue}`);
    read.raw.push(rawR);
    read.restore.push(restoreMs);
    read.ratio.push(rawR / SIZE / (restoreMs / freshBytes(i)));
  }
  fs.rmSync(rawFile);
  const loadAfter = os.loadavg();

  const rawWMed = median(write.raw);
  const rawRMed = median(read.raw);
  const result = {
    when: new Date().toISOString(),
    host: os.hostname(),
    node: process.version,
    cpus: os.cpus().length,
    loadavg_1m_before: +loadBefore[0].toFixed(2),
    loadavg_1m_after: +loadAfter[0].toFixed(2),
    size_mb: MB,
    reps: REPS,
    raw_write_fsync_MBps: mbps(SIZE, rawWMed),
    raw_read_MBps: mbps(SIZE, rawRMed),
    record_new_value_MBps: mbps(SIZE, median(write.rec)),
    record_new_value_write_ratio: +median(write.ratio).toFixed(2),
    record_new_value_write_ratio_stats: stats(write.ratio),
    record_changed_same_size_MBps: mbps(SIZE, sameSize.totalMs),
    record_changed_same_size_ratio: +(rawW1 / SIZE / (sameSize.totalMs / SIZE)).toFixed(2),
    record_unchanged_ms: Math.round(unchanged.totalMs),
    restore_MBps: mbps(SIZE, median(read.restore)),
    restore_read_ratio: +median(read.ratio).toFixed(2),
    restore_read_ratio_stats: stats(read.ratio),
    raw_read_ms: read.raw.map((x) => Math.round(x)),
    raw_read_cpu_ms: read.rawCpu.map((x) => Math.round(x)),
    restore_cpu_ms: read.restoreCpu.map((x) => Math.round(x)),
    restore_ms: read.restore.map((x) => Math.round(x)),
    raw_write_fsync_ms: write.raw.map((x) => Math.round(x)),
    record_new_value_ms: write.rec.map((x) => Math.round(x)),
    trivial_cell_snapshot_p50_ms: +pct(trivial.snapshot, 50).toFixed(3),
    trivial_cell_record_p50_ms: +pct(trivial.total, 50).toFixed(2),
    trivial_cell_record_p90_ms: +pct(trivial.total, 90).toFixed(2),
    warnings,
  };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
  executor.close();
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(ROOT, { recursive: true, force: true }));

/**
 * 256 MB Float64Array through the store, bit-exact, with throughput measured
 * against raw write+fsync / read of the same bytes in the same run. Numbers
 * are reported (diagnostics), not asserted: timing asserts flake on shared CI.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Datastore } from "../../src/store";
import { tmpStoreDir } from "./helpers";

const SIZE = 256 << 20;
const SLICE = 8 << 20;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function rawWrite(file: string, data: Uint8Array): number {
  const t = process.hrtime.bigint();
  const fd = openSync(file, "w");
  for (let off = 0; off < data.byteLength; off += SLICE) writeSync(fd, data, off, Math.min(SLICE, data.byteLength - off));
  fsyncSync(fd);
  closeSync(fd);
  return seconds(t);
}

function rawRead(file: string, size: number): number {
  const t = process.hrtime.bigint();
  const buf = Buffer.allocUnsafeSlow(size);
  const fd = openSync(file, "r");
  for (let off = 0; off < size; off += SLICE) readSync(fd, buf, off, Math.min(SLICE, size - off), off);
  closeSync(fd);
  return seconds(t);
}

test("a 256 MB Float64Array round-trips bit-exactly; throughput vs raw I/O is reported", async (t) => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const arr = new Float64Array(SIZE / 8);
    for (let i = 0; i < arr.length; i++) arr[i] = i * 1.000001 - 7;
    const bytes = new Uint8Array(arr.buffer);
    const rawFile = join(dir, "raw.bin");
    const rawW = rawWrite(rawFile, bytes);
    const rawR = rawRead(rawFile, SIZE);
    await rm(rawFile);

    const ds = await Datastore.open(join(dir, "store"), { create: true });
    let t0 = process.hrtime.bigint();
    const rec = await ds.recordExecution({ notebook: null, cell: "c", code: "arr", outputs: { arr }, status: "ok", started: new Date(), target: "kernel" });
    const storeW = seconds(t0);
    t0 = process.hrtime.bigint();
    const again = await ds.recordExecution({ notebook: null, cell: "c", code: "arr", outputs: { arr }, status: "ok", started: new Date(), target: "kernel" });
    const dedupW = seconds(t0);
    assert.equal(again.outputs.arr.new_version, false);

    const fresh = await Datastore.open(join(dir, "store"));
    t0 = process.hrtime.bigint();
    const back = (await fresh.restore(`arr@${rec.outputs.arr.version}`)).value as Float64Array;
    const storeR = seconds(t0);
    assert.ok(back instanceof Float64Array);
    assert.equal(back.length, arr.length);
    assert.equal(back.buffer.byteLength, SIZE, "restored into one allocation of exactly the array's size");
    assert.ok(Buffer.from(back.buffer).equals(Buffer.from(arr.buffer)), "bit-exact");

    const mb = SIZE / (1 << 20);
    const report = {
      raw_write_fsync_MBps: Math.round(mb / rawW),
      store_write_MBps: Math.round(mb / storeW),
      write_ratio: +(rawW / storeW).toFixed(2),
      raw_read_MBps: Math.round(mb / rawR),
      store_read_verified_MBps: Math.round(mb / storeR),
      read_ratio: +(rawR / storeR).toFixed(2),
      unchanged_rerecord_ms: Math.round(dedupW * 1000),
    };
    t.diagnostic(JSON.stringify(report));
  } finally {
    await cleanup();
  }
});

test("recording overhead of a trivial cell (reported, p50 over 50 cells)", async (t) => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const ds = await Datastore.open(dir, { create: true });
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = process.hrtime.bigint();
      await ds.recordExecution({
        notebook: "/nb.ipynb",
        cell: "c",
        code: `x = ${i % 2}`,
        outputs: { x: i % 2 },
        status: "ok",
        started: new Date(),
        target: "kernel",
      });
      times.push(seconds(t0) * 1000);
    }
    times.sort((a, b) => a - b);
    t.diagnostic(`trivial cell recording: p50 ${times[25].toFixed(2)} ms, p90 ${times[45].toFixed(2)} ms`);
    assert.equal((await ds.history()).length, 50);
  } finally {
    await cleanup();
  }
});

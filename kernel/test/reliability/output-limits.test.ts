/**
 * The pieces that keep a flood of output from swamping the frontend, the
 * kernel's memory or the worker socket (issue 11); the end-to-end flood is
 * tests/test_reliability.py.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CellOutputLimit, cellOutputLimit, DEFAULT_CELL_OUTPUT_BYTES } from "../../src/session/output-capture";
import { LogBuffer } from "../../src/session/log-buffer";
import { logLimit } from "../../src/worker/log-limit";
import { ItemOutput } from "../../src/step/foreach-output";
import { StreamJoiner } from "../../src/worker/streams";
import type { WireMessage } from "../../src/worker/wire";
import type { StepEvent } from "../../src/worker/events";
import { ShippedOutput } from "../../src/worker/remote/output-cap";

test("a request shows output up to its limit, cut at a line end, and counts the rest", () => {
  const limit = new CellOutputLimit(100);
  const line = "x".repeat(29) + "\n"; // 30 bytes
  const shown = [1, 2, 3, 4, 5].map(() => limit.admit("a", line));
  assert.deepEqual(shown.slice(0, 3), [line, line, line]);
  assert.match(shown[3], /^\[nbscale: output beyond 0\.1 kB is not shown here; the whole log is recorded\]\n$/);
  assert.equal(shown[4], "");
  assert.equal(limit.hidden("a"), 60);
  // Another request has its own budget; multi-byte text is counted in bytes.
  assert.equal(limit.admit("b", "é".repeat(50)), "é".repeat(50));
  assert.equal(limit.hidden("b"), 0);
  assert.match(limit.admit("b", "é\n"), /not shown/);
  assert.equal(limit.hidden("b"), 3);
});

test("the limit comes from NBSCALE_OUTPUT_BYTES; a bad value is reported and ignored", () => {
  assert.equal(
    cellOutputLimit({ NBSCALE_OUTPUT_BYTES: "4M" }, () => assert.fail()),
    4 << 20,
  );
  assert.equal(
    cellOutputLimit({ NBSCALE_OUTPUT_BYTES: "2048" }, () => assert.fail()),
    2048,
  );
  const warned: string[] = [];
  assert.equal(
    cellOutputLimit({ NBSCALE_OUTPUT_BYTES: "lots" }, (t) => void warned.push(t)),
    DEFAULT_CELL_OUTPUT_BYTES,
  );
  assert.match(warned.join(""), /NBSCALE_OUTPUT_BYTES=lots is not a size/);
});

test("a log keeps its text as UTF-8 chunks up to its limit and counts what it dropped", () => {
  const log = new LogBuffer(200 * 1024);
  for (let i = 0; i < 3000; i++) log.append(`${i}\n`);
  const text = Buffer.concat(log.chunks()).toString("utf8");
  assert.equal(text.split("\n").length - 1, 3000);
  const full = new LogBuffer(10);
  full.append("12345");
  full.append("678901");
  full.append("x");
  assert.equal(Buffer.concat(full.chunks()).toString(), "12345");
  assert.equal(full.dropped, 7);
  assert.equal(logLimit({ NBSCALE_LOG_BYTES: "1M" }), 1 << 20);
});

test("a foreach item's record keeps at most NBSCALE_LOG_BYTES and says how much it left out", () => {
  const before = process.env.NBSCALE_LOG_BYTES;
  process.env.NBSCALE_LOG_BYTES = "1000";
  try {
    const forwarded: StepEvent[] = [];
    const item = new ItemOutput(3, (e) => void forwarded.push(e));
    for (let i = 0; i < 100; i++) item.onEvent({ type: "stream", name: "stdout", text: `${"y".repeat(99)}\n` });
    item.flush();
    assert.equal(forwarded.length, 100, "the cell still gets every line (its own limit applies there)");
    assert.ok(item.stdout.startsWith("y".repeat(99)) && item.stdout.length < 1200);
    assert.match(item.stdout, /the last 9\.0 kB of this log were not recorded/);
  } finally {
    if (before === undefined) delete process.env.NBSCALE_LOG_BYTES;
    else process.env.NBSCALE_LOG_BYTES = before;
  }
});

test("a worker's writes are joined per task and stream, and never overtake other messages", async () => {
  const sent: WireMessage[] = [];
  const joiner = new StreamJoiner((m) => void sent.push(m), 1000, 5);
  const stream = (task: string, name: "stdout" | "stderr", text: string, seq: number): WireMessage => ({
    header: { type: "event", task, seq, event: { type: "stream", name, text } },
    frames: [],
  });
  for (let i = 0; i < 10; i++) joiner.send(stream("t", "stdout", "a", i));
  joiner.send(stream("t", "stderr", "E", 10));
  joiner.send({ header: { type: "done", task: "t" }, frames: [] });
  assert.deepEqual(
    sent.map((m) => [m.header.type, (m.header.event as { text?: string } | undefined)?.text]),
    [
      ["event", "a".repeat(10)],
      ["event", "E"],
      ["done", undefined],
    ],
  );
  // Big writes go out at the size limit; a lone write goes out after the delay.
  sent.length = 0;
  joiner.send(stream("t", "stdout", "b".repeat(1500), 0));
  assert.equal(sent.length, 1);
  joiner.send(stream("t", "stdout", "c", 1));
  assert.equal(sent.length, 1);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(sent.length, 2);
});

test("a remote job ships output up to its limit (cut on a character boundary), says so once, and returns the rest for its own stream", () => {
  const shipped: Array<[string, string]> = [];
  const out = new ShippedOutput((name, text) => shipped.push([name, text]), 10);
  assert.equal(out.offer("stdout", "abcdef"), "");
  assert.equal(out.offer("stdout", "ghé€xyz"), "€xyz", "9 bytes fit: ghé ends at 10, € would not");
  assert.equal(out.offer("stderr", "more"), "more");
  assert.equal(out.offer("stdout", "and more"), "and more");
  const notes = shipped.filter(([, t]) => t.includes("NBSCALE_LOG_BYTES"));
  assert.equal(notes.length, 1);
  assert.match(notes[0][1], /printed more than 0\.0 kB .*the job's own output/);
  assert.deepEqual(
    shipped.filter(([, t]) => !t.includes("NBSCALE_LOG_BYTES")),
    [
      ["stdout", "abcdef"],
      ["stdout", "ghé"],
    ],
  );
  const bytes = shipped.filter(([, t]) => !t.includes("NBSCALE_LOG_BYTES")).reduce((n, [, t]) => n + Buffer.byteLength(t), 0);
  assert.equal(bytes, 10);
});

/** The live line of a long recording: after a delay (a timer), or at once when the delay is 0. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { installDisplaySink } from "../../src/client/display";
import { RecordingNote } from "../../src/session/record-progress";

function capture(): { shown: string[]; done(): void } {
  const shown: string[] = [];
  installDisplaySink({ display: (data) => shown.push(String(data["text/plain"])), clear: () => undefined });
  return { shown, done: () => installDisplaySink(undefined) };
}

test("with delay 0 (NBSCALE_PROGRESS_AFTER_MS=0) the line is there before any timer could run, and ends with what was recorded", () => {
  const c = capture();
  try {
    const note = new RecordingNote([{ name: "huge", bytes: 1 << 30 }], "/store", 0);
    assert.deepEqual(c.shown, ["recording huge (1.0 GiB) to /store…"]);
    note.done({ huge: 1 });
    assert.equal(c.shown.length, 2);
    assert.match(c.shown[1], /^recorded huge@1 \(1\.0 GiB\) in \d+\.\d s$/);
  } finally {
    c.done();
  }
});

test("a recording that ends before the delay shows nothing", () => {
  const c = capture();
  try {
    const note = new RecordingNote([{ name: "big", bytes: 128 << 20 }], "/store", 60_000);
    note.done({ big: 2 });
    assert.deepEqual(c.shown, []);
  } finally {
    c.done();
  }
});

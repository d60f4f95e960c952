/** The live line of a long `%restore`: silent for quick reads, redrawn in place, ending with size and speed. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { installDisplaySink } from "../../src/client/display";
import { progressAfterMs, ReadProgress } from "../../src/session/read-progress";

function capture(): { shown: Array<{ text: string; id: string | undefined; update: boolean }>; done(): void } {
  const shown: Array<{ text: string; id: string | undefined; update: boolean }> = [];
  installDisplaySink({ display: (data, _m, id, update) => shown.push({ text: String(data["text/plain"]), id, update }), clear: () => undefined });
  return { shown, done: () => installDisplaySink(undefined) };
}

test("a quick read shows nothing at all", () => {
  const c = capture();
  try {
    let t = 1000;
    const p = new ReadProgress("big@2", () => t);
    for (let done = 0; done <= 256; done += 32) {
      t += 30;
      p.update(done << 20, 256 << 20);
    }
    p.finish(256 << 20);
    assert.deepEqual(c.shown, []);
  } finally {
    c.done();
  }
});

test("a long read gets one line, redrawn in place at most every 200 ms, ending with size, time and speed", () => {
  const c = capture();
  try {
    let t = 0;
    const G = 1 << 30;
    const p = new ReadProgress("big@3", () => t);
    for (let i = 1; i <= 40; i++) {
      t += 50; // 2 s for 4 GiB
      p.update((i * 4 * G) / 40, 4 * G);
    }
    p.finish(4 * G);
    assert.ok(c.shown.length >= 5 && c.shown.length <= 10, `${c.shown.length} draws`);
    assert.equal(new Set(c.shown.map((s) => s.id)).size, 1, "one output, updated in place");
    assert.equal(c.shown[0].update, false);
    assert.ok(c.shown.slice(1).every((s) => s.update));
    assert.equal(c.shown[0].text, "reading big@3  [####................] 819 MiB of 4.0 GiB, verified as read");
    assert.equal(c.shown[c.shown.length - 1].text, "read big@3: 4.0 GiB in 2.0 s (2.0 GiB/s), every chunk verified");
  } finally {
    c.done();
  }
});

test("NBSCALE_PROGRESS_AFTER_MS sets the delay; 0 shows the line of even a quick read", () => {
  assert.equal(progressAfterMs(400, {}), 400);
  assert.equal(progressAfterMs(400, { NBSCALE_PROGRESS_AFTER_MS: "0" }), 0);
  assert.equal(progressAfterMs(400, { NBSCALE_PROGRESS_AFTER_MS: " 1500 " }), 1500);
  assert.equal(progressAfterMs(400, { NBSCALE_PROGRESS_AFTER_MS: "soon" }), 400, "not a number: the default");
  const c = capture();
  try {
    let t = 1000;
    const p = new ReadProgress("small@1", () => t, 0);
    p.update(1 << 20, 4 << 20);
    t += 10;
    p.finish(4 << 20);
    assert.deepEqual(
      c.shown.map((s) => s.text),
      ["reading small@1  [#####...............] 1 MiB of 4 MiB, verified as read", "read small@1: 4 MiB in 0.0 s (400 MiB/s), every chunk verified"],
    );
  } finally {
    c.done();
  }
});

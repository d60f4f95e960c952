import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { dirname } from "node:path";
import * as zmq from "zeromq";
import { LocalPool } from "../../src/backends/local-pool";
import { newSessionKey, WireChannel } from "../../src/worker/wire";
import { decodeValues } from "../../src/worker/codec";
import { PACKAGE_DIR } from "../../src/version";

const program = (source: string) => ({ filename: "nbscale-step-test.js", source });

test("the pool runs a task, and drops (and logs) messages from sockets that are not its workers", async () => {
  const logs: string[] = [];
  const pool = new LocalPool({ cwd: process.cwd(), packageDir: PACKAGE_DIR, log: (t) => void logs.push(t), warm: 0 });
  try {
    await pool.start();
    assert.match(pool.endpoint, /^ipc:\/\//);
    assert.equal(statSync(dirname(pool.endpoint.slice("ipc://".length))).mode & 0o777, 0o700, "socket directory is private");
    const events: string[] = [];
    const r = await pool.run({
      step: "t",
      attempt: 1,
      env: { X: "1" },
      program: program("(async function (__nbscale) { await __nbscale.inputs(() => undefined); console.log('hi', process.env.X); return { y: 2 }; })"),
      inputs: { specs: [], frames: [] },
      onEvent: (e) => void (e.type === "stream" && events.push(e.text)),
    });
    assert.equal(r.status, "done");
    assert.deepEqual(events, ["hi 1\n"]);
    const worker = pool.list()[0];

    // A local process that found the socket: unsigned, and signed with another key, claiming to be a worker.
    // (zeromq itself refuses a second peer with a live worker's id.)
    const rogue = new zmq.Dealer({ routingId: `${worker.id}-x`, linger: 0 });
    rogue.connect(pool.endpoint);
    await rogue.send([Buffer.from("not a signature"), Buffer.alloc(8), Buffer.from(JSON.stringify({ type: "done", task: "x", outputs: [], stubs: [] }))]);
    await rogue.send(new WireChannel(newSessionKey()).encode({ header: { type: "hello", worker: worker.id, pid: 1 }, frames: [] }));
    // Waits for the two log lines, not for a guessed time (60 s only guards a hang).
    for (const until = Date.now() + 60_000; Date.now() < until && logs.filter((l) => l.includes("dropped")).length < 2;) {
      await new Promise((res) => setTimeout(res, 20));
    }
    rogue.close();
    assert.equal(logs.filter((l) => /dropped a worker-socket message .*not a worker of this kernel/.test(l)).length, 2, logs.join(""));
    // The pool still works after the noise.
    const again = await pool.run({
      step: "t2",
      attempt: 1,
      env: {},
      program: program("(async function (__nbscale) { await __nbscale.inputs(() => undefined); return { z: 3 }; })"),
      inputs: { specs: [], frames: [] },
      onEvent: () => undefined,
    });
    assert.equal(again.status, "done");
  } finally {
    pool.close();
  }
});

test("a memory request is a heap limit and an RSS limit", async () => {
  const pool = new LocalPool({ cwd: process.cwd(), packageDir: PACKAGE_DIR, log: () => undefined, warm: 0 });
  try {
    const r = await pool.run({
      step: "m",
      attempt: 1,
      memory: 512 * 2 ** 20,
      env: {},
      program: program(
        "(async function (__nbscale, require) { await __nbscale.inputs(() => undefined); return { limit: require('v8').getHeapStatistics().heap_size_limit }; })",
      ),
      inputs: { specs: [], frames: [] },
      onEvent: () => undefined,
    });
    assert.equal(r.status, "done");
    if (r.status !== "done") return;
    const limit = (await decodeValues(r.outputs, r.pieces)).get("limit") as number;
    assert.ok(limit > 300 * 2 ** 20 && limit < 512 * 2 ** 20, `heap limit ${limit} for a 512M request`);
    assert.equal(pool.list().find((w) => w.memory === 512 * 2 ** 20)?.state, "idle", "kept warm for the next 512M step");
  } finally {
    pool.close();
  }
});

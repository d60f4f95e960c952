/**
 * A worker runs only what its own kernel signed (issue 11): a process that
 * reaches the worker's socket without the session key gets nothing run. The
 * test plays the kernel with a real `nbscale worker` process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zmq from "zeromq";
import { newSessionKey, WireChannel } from "../../src/worker/wire";
import { PACKAGE_DIR } from "../../src/version";

test("a task signed with another key, or not signed, runs nothing; the same task signed with the session key runs", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nbscale-worker-auth-"));
  const canary = path.join(dir, "ran");
  const endpoint = `ipc://${path.join(dir, "kernel.sock")}`;
  const key = newSessionKey();
  const router = new zmq.Router({ linger: 0 });
  await router.bind(endpoint);
  const worker = spawn(process.execPath, [path.join(PACKAGE_DIR, "bin", "nbscale.js"), "worker", "--connect", endpoint, "--id", "w-auth"], {
    stdio: ["pipe", "ignore", "pipe"],
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  let stderr = "";
  worker.stderr!.on("data", (b: Buffer) => void (stderr += b.toString()));
  worker.stdin!.write(`${key.toString("hex")}\n`);
  try {
    const mine = new WireChannel(key);
    const received = router[Symbol.asyncIterator]();
    const next = async () => (await received.next()).value as Buffer[];
    const [id, ...hello] = await next();
    assert.equal(mine.decode(hello)?.header.type, "hello");
    const task = {
      type: "task",
      task: "t1",
      step: "s",
      attempt: 1,
      env: {},
      program: {
        filename: "auth.js",
        source: `(async function (__nbscale, require) { await __nbscale.inputs(() => undefined); require("fs").writeFileSync(${JSON.stringify(canary)}, "x"); return {}; })`,
      },
      inputs: [],
      spilled: [],
    };
    await router.send([id, ...new WireChannel(newSessionKey()).encode({ header: task, frames: [] })]);
    await router.send([id, Buffer.from("no signature"), Buffer.alloc(8), Buffer.from(JSON.stringify(task))]);
    // Waits for the two log lines, not for a guessed time (60 s only guards a hang).
    for (const until = Date.now() + 60_000; Date.now() < until && (stderr.match(/dropped/g) ?? []).length < 2;) await new Promise((r) => setTimeout(r, 20));
    assert.equal((stderr.match(/dropped a message with a bad signature/g) ?? []).length, 2, stderr);
    assert.ok(!fs.existsSync(canary), "nothing ran");
    // The control: the same task, signed with the session key, does run.
    await router.send([id, ...mine.encode({ header: task, frames: [] })]);
    let reply = mine.decode((await next()).slice(1));
    while (reply && reply.header.type === "event") reply = mine.decode((await next()).slice(1));
    assert.equal(reply?.header.type, "done", JSON.stringify(reply?.header));
    assert.ok(fs.existsSync(canary));
  } finally {
    worker.kill("SIGKILL");
    router.close();
  }
});

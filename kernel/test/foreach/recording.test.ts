/**
 * A `--foreach` execution in the history: the foreach with its joined arrays,
 * and each item as an execution of its own (its values as `name[i]`, its
 * own output, its worker), the two linked both ways. Real Recorder, real
 * datastore; the outcome is what the step runner hands the kernel.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor } from "../../src/session/executor";
import { Recorder } from "../../src/session/recording";
import { Datastore } from "../../src/store";
import type { JupyterMessage } from "../../src/protocol/message";
import type { ExecOutcome } from "../../src/session/executor";

const PACKAGE_DIR = join(__dirname, "..", "..", "..");

test("items are recorded as executions linked to their foreach", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nbs-foreach-rec-"));
  const executor = new Executor({ cwd: dir, packageDir: PACKAGE_DIR, builtinModules: {} });
  const warnings: string[] = [];
  const recorder = new Recorder({ cwd: dir, env: {}, executor, warn: (_p, t) => void warnings.push(t) });
  try {
    const t0 = Date.now();
    const at = (ms: number) => new Date(t0 + ms);
    const code = "%%step fit --foreach cfgs\nconst score = item * 2;";
    const outcome: ExecOutcome = {
      ok: false,
      error: { ename: "ForeachItemsFailed", evalue: "1 of 2 items failed", traceback: [] },
      meta: {
        step: { name: "fit", options: { foreach: "cfgs", on: "local" } },
        target: "local",
        outputs: { score: [2, undefined] },
        outputTypes: { score: "Array<number | undefined>" },
        items: [
          {
            index: 1,
            status: "error",
            error: { ename: "Error", evalue: "bad", traceback: ["Error: bad"] },
            started: at(20),
            finished: at(30),
            outputs: {},
            outputTypes: {},
            attempts: 2,
            stdout: "",
            stderr: "oops\n",
            worker: { id: "w2", pid: 12 },
          },
          {
            index: 0,
            status: "ok",
            started: at(10),
            finished: at(40),
            outputs: { score: 2 },
            outputTypes: { score: "number" },
            attempts: 1,
            stdout: "hello\n",
            stderr: "",
            worker: { id: "w1", pid: 11 },
          },
        ],
      },
    };
    const msg = {
      header: { msg_id: "m1", msg_type: "execute_request", username: "", session: "", date: "", version: "5.3" },
      parent_header: {},
      metadata: { cellId: "cell-1" },
      content: {},
    } as unknown as JupyterMessage;
    await recorder.record({ msg, code, executionCount: 1, started: at(0), outcome });
    assert.deepEqual(warnings, []);

    const ds = await Datastore.open(join(dir, ".nbscale"));
    const all = await ds.history({ limit: 10 });
    assert.equal(all.length, 3);
    const parent = all.find((r) => r.step?.options.foreachItems)!;
    const items = all.filter((r) => r.step?.options.foreachItem).sort((a, b) => a.id.localeCompare(b.id));
    assert.equal(items.length, 2);
    assert.equal(parent.cell, "cell-1");
    assert.equal(parent.status, "error");
    assert.deepEqual(Object.keys(parent.outputs), ["score"]);
    assert.deepEqual(
      parent.step!.options.foreachItems,
      items.map((r) => r.id),
      "the foreach lists its items, in start order",
    );

    const [first, second] = items;
    assert.deepEqual(first.step!.options.foreachItem, { parent: parent.id, index: 0, attempts: 1 });
    assert.equal(first.cell, "cell-1");
    assert.equal(first.status, "ok");
    assert.deepEqual(Object.keys(first.outputs), ["score[0]"], "item values don't add versions to `score`");
    assert.equal(first.outputs["score[0]"].ts_type, "number");
    assert.equal(first.worker.id, "w1");
    assert.deepEqual(first.stdout, { text: "hello\n", size: 6 });

    assert.deepEqual(second.step!.options.foreachItem, { parent: parent.id, index: 1, attempts: 2 });
    assert.equal(second.status, "error");
    assert.equal(second.error?.evalue, "bad");
    assert.deepEqual(second.stderr, { text: "oops\n", size: 5 });

    // `score`'s only version is the session's array.
    const versions = all.flatMap((r) => Object.keys(r.outputs)).filter((n) => n === "score");
    assert.equal(versions.length, 1);
  } finally {
    executor.close();
    await rm(dir, { recursive: true, force: true });
  }
});

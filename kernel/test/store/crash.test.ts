import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Datastore, FsBackend, UnknownVariableError, fsck } from "../../src/store";
import fsckCommand from "../../src/cli/commands/fsck";
import { runCli, runNode, sleep, tmpStoreDir } from "./helpers";

const WRITER = `
(async () => {
  const ds = await STORE.Datastore.open(process.argv[1], { create: true });
  const base = { notebook: "/nb.ipynb", code: "x", status: "ok", started: new Date(), target: "kernel" };
  await ds.recordExecution({ ...base, cell: "c0", outputs: { small: [1, 2, 3] } });
  console.log("committed");
  const big = new Float64Array((512 << 20) / 8).fill(3.25);
  await ds.recordExecution({ ...base, cell: "c1", outputs: { big } });
  console.log("finished");
})();
`;

async function biggestTemp(dir: string): Promise<number> {
  try {
    let max = 0;
    for (const n of await readdir(join(dir, "tmp"))) max = Math.max(max, (await stat(join(dir, "tmp", n)).catch(() => ({ size: 0 }))).size);
    return max;
  } catch {
    return 0;
  }
}

test("a writer SIGKILLed while writing a large artifact leaves a consistent store and a listed, cleanable orphan", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const child = runNode(WRITER, [dir]);
    const deadline = Date.now() + 60_000;
    while ((await biggestTemp(dir)) < 32 << 20) {
      assert.ok(Date.now() < deadline, "the writer never started writing the big artifact");
      await sleep(5);
    }
    child.kill("SIGKILL");
    const exit = await child.done;
    assert.equal(exit.signal, "SIGKILL");
    assert.match(exit.stdout, /committed/);
    assert.doesNotMatch(exit.stdout, /finished/, "killed before the record committed");

    const result = await fsck(new FsBackend(dir));
    assert.equal(result.consistent, true, JSON.stringify(result.problems));
    const temps = result.leftovers.filter((l) => l.kind === "temp");
    assert.equal(temps.length, 1);
    assert.equal(temps[0].writer, "gone");
    assert.equal(temps[0].removable, true);
    assert.match(temps[0].id, new RegExp(`^nbs-${child.pid}-`));

    const ds = await Datastore.open(dir);
    assert.deepEqual((await ds.history()).map((r) => r.cell), ["c0"], "only the committed execution is visible");
    await assert.rejects(ds.restore("big"), UnknownVariableError);
    assert.deepEqual((await ds.restore("small")).value, [1, 2, 3]);

    const cli = await runCli(fsckCommand, ["--clean", "--json"], { NBSCALE_DATASTORE: dir }, dir);
    assert.equal(cli.code, 0, cli.stderr);
    const json = cli.json as { consistent: boolean; leftovers: Array<{ removed: boolean }> };
    assert.equal(json.consistent, true);
    assert.deepEqual(json.leftovers.map((l) => l.removed), [true]);
    assert.deepEqual(await readdir(join(dir, "tmp")), []);
  } finally {
    await cleanup();
  }
});

test("fsck keeps a live writer's temp file", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const child = runNode(WRITER, [dir]);
    const deadline = Date.now() + 60_000;
    while ((await biggestTemp(dir)) === 0) {
      assert.ok(Date.now() < deadline, "no temp file appeared");
      await sleep(2);
    }
    const result = await fsck(new FsBackend(dir), { clean: true, graceMs: 0 });
    const live = result.leftovers.filter((l) => l.kind === "temp" && l.writer === "alive");
    // The write may finish between the listing and the check; when it was seen, it was kept.
    for (const l of live) assert.equal(l.removed, false);
    const exit = await child.done;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stdout, /finished/, "the live writer was not disturbed");
    assert.equal((await fsck(new FsBackend(dir))).consistent, true);
  } finally {
    await cleanup();
  }
});

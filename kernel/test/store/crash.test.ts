import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, rm, stat, writeFile } from "node:fs/promises";
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
    assert.deepEqual(
      (await ds.history()).map((r) => r.cell),
      ["c0"],
      "only the committed execution is visible",
    );
    await assert.rejects(ds.restore("big"), UnknownVariableError);
    assert.deepEqual((await ds.restore("small")).value, [1, 2, 3]);

    const cli = await runCli(fsckCommand, ["--clean", "--json"], { NBSCALE_DATASTORE: dir }, dir);
    assert.equal(cli.code, 0, cli.stderr);
    const json = cli.json as { consistent: boolean; leftovers: Array<{ removed: boolean }> };
    assert.equal(json.consistent, true);
    assert.deepEqual(
      json.leftovers.map((l) => l.removed),
      [true],
    );
    assert.deepEqual(await readdir(join(dir, "tmp")), []);
  } finally {
    await cleanup();
  }
});

/**
 * A writer that stops in the middle of writing a value's bytes (its temp file
 * open and partly written, the previous output's version record allocated and
 * uncommitted) until the file `go` appears.
 */
const STOPPING_WRITER = `
const fs = require("node:fs");
const [dir, go] = process.argv.slice(1);
(async () => {
  const inner = new STORE.FsBackend(dir);
  let stopped = false;
  const stopping = (chunks) => (async function* () {
    let n = 0;
    for await (const c of chunks) {
      if (n++ === 1 && !stopped) {
        stopped = true;
        console.log("stopped");
        while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 2));
      }
      yield c;
    }
  })();
  const backend = Object.create(inner);
  backend.putByHash = (keyOf, chunks, o) => inner.putByHash(keyOf, stopping(chunks), o);
  const ds = await STORE.Datastore.openBackend(backend, { create: true });
  const base = { notebook: "/nb.ipynb", code: "x", status: "ok", started: new Date(), target: "kernel" };
  await ds.recordExecution({ ...base, cell: "c0", outputs: { small: [1, 2, 3] } });
  const big = new Float64Array((4 << 20) / 8).fill(3.25);
  const r = await ds.recordExecution({ ...base, cell: "c1", outputs: { small: [4, 5], big } });
  console.log("finished " + JSON.stringify({ small: r.outputs.small.version, big: r.outputs.big.version }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

test("fsck --clean with no grace keeps a live writer's temp file and its uncommitted version, and the writer commits both", async () => {
  const { dir, cleanup } = await tmpStoreDir();
  const go = `${dir}.go`;
  try {
    const child = runNode(STOPPING_WRITER, [dir, go]);
    const deadline = Date.now() + 60_000;
    while (!child.stdoutSoFar().includes("stopped")) {
      assert.ok(Date.now() < deadline, "the writer never stopped mid-write");
      await sleep(2);
    }
    const result = await fsck(new FsBackend(dir), { clean: true, graceMs: 0 });
    assert.equal(result.consistent, true, JSON.stringify(result.problems));
    const shown = result.leftovers.map((l) => [l.kind, l.id.replace(/-[0-9a-f]{12}-.*$/, "-…"), l.writer, l.removable, l.removed]);
    assert.deepEqual(shown, [
      ["uncommitted-version", "vars/small/0000000002.json", "alive", false, false],
      ["temp", `nbs-${child.pid}-…`, "alive", false, false],
    ]);
    await writeFile(go, "");
    const exit = await child.done;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stdout, /finished \{"small":2,"big":1\}/, "the live writer was not disturbed");
    const after = await fsck(new FsBackend(dir));
    assert.equal(after.consistent, true, JSON.stringify(after.problems));
    assert.deepEqual(after.leftovers, []);
    const ds = await Datastore.open(dir);
    assert.deepEqual((await ds.restore("small@2")).value, [4, 5]);
    assert.equal(((await ds.restore("big@1")).value as Float64Array)[1000], 3.25);
  } finally {
    await rm(go, { force: true });
    await cleanup();
  }
});

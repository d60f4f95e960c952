import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { Datastore, FsBackend, fsck } from "../../src/store";
import { runNode, sleep, tmpStoreDir } from "./helpers";

const KERNEL = `
const fs = require("node:fs");
const [dir, who, n, go] = process.argv.slice(1);
(async () => {
  fs.writeFileSync(go + "." + who, "");
  while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 2));
  const ds = await STORE.Datastore.open(dir, { create: true });
  const shared = new Uint8Array(8 << 20).fill(5);
  const versions = [];
  for (let i = 0; i < Number(n); i++) {
    const r = await ds.recordExecution({
      notebook: "/nb-" + who + ".ipynb", cell: "c", code: "x = " + i, status: "ok", started: new Date(), target: "kernel",
      outputs: { x: { who, i }, shared },
    });
    versions.push(r.outputs.x.version);
  }
  console.log(JSON.stringify(versions));
})().catch((e) => { console.error(e); process.exit(1); });
`;

test("two kernels writing the same variable into one store at once lose nothing", async (t) => {
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const n = 25;
    const go = `${dir}.go`;
    const kids = ["A", "B"].map((who) => runNode(KERNEL, [dir, who, String(n), go]));
    // Both processes up and polling (each says so with a file), however long they took to start.
    for (const until = Date.now() + 60_000; !["A", "B"].every((who) => existsSync(`${go}.${who}`)); await sleep(5)) {
      assert.ok(Date.now() < until, "the two writers did not start within 60 s");
    }
    await writeFile(go, "");
    const results = await Promise.all(kids.map((k) => k.done));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const [a, b] = results.map((r) => JSON.parse(r.stdout.trim()) as number[]);
    t.diagnostic(`versions A: ${a.join(",")}  B: ${b.join(",")}`);
    const all = [...a, ...b].sort((x, y) => x - y);
    assert.deepEqual(
      all,
      Array.from({ length: 2 * n }, (_, i) => i + 1),
      "every version number used exactly once",
    );

    const ds = await Datastore.open(dir);
    assert.equal((await ds.history()).length, 2 * n);
    for (const [who, versions] of [
      ["A", a],
      ["B", b],
    ] as const) {
      for (let i = 0; i < n; i++) assert.deepEqual((await ds.restore(`x@${versions[i]}`)).value, { who, i });
    }
    assert.equal((await ds.versions("shared")).length, 2, "one version of the shared value per notebook");
    const check = await fsck(new FsBackend(dir));
    assert.equal(check.consistent, true, JSON.stringify(check.problems));
    assert.deepEqual(check.leftovers, []);
  } finally {
    for (const f of [`${dir}.go`, `${dir}.go.A`, `${dir}.go.B`]) await rm(f, { force: true });
    await cleanup();
  }
});

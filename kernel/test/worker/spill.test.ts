import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readSync, rmSync, statSync } from "node:fs";
import { makeSpillDir, piecesOf, releasePieces, spillFrames, SPILL_MIN, type Piece } from "../../src/worker/spill";

function receive(dir: string, frames: Uint8Array[]): { bytes: Uint8Array[]; pieces: Piece[] } {
  const sent = spillFrames(frames, dir);
  const pieces = piecesOf(sent.frames, sent.spilled, dir);
  const bytes = pieces.map((p) => {
    if (p instanceof Uint8Array) return p;
    const out = new Uint8Array(p.length);
    readSync(p.fd, out, 0, p.length, 0);
    return out;
  });
  return { bytes, pieces };
}

const frame = (n: number, fill: number) => new Uint8Array(n).fill(fill);

test("a read spill file is recycled for the next big frame, with exactly that frame's bytes", () => {
  const dir = makeSpillDir();
  try {
    const big = frame(3 * SPILL_MIN, 1);
    const first = receive(dir, [big, frame(10, 9)]);
    assert.deepEqual(first.bytes[0], big);
    assert.deepEqual(first.bytes[1], frame(10, 9), "small frames stay in the message");
    releasePieces(first.pieces);
    const free = readdirSync(dir).filter((n) => n.startsWith("free-"));
    assert.equal(free.length, 1, "the read file is kept for reuse");
    const inode = statSync(`${dir}/${free[0]}`).ino;

    // A smaller frame reuses it, cut to its own length (no stale tail).
    const smaller = frame(2 * SPILL_MIN, 2);
    const sent = spillFrames([smaller], dir);
    assert.equal(statSync(sent.spilled[0].file).ino, inode, "the same file, not a new one");
    assert.equal(statSync(sent.spilled[0].file).size, smaller.byteLength);
    assert.equal(readdirSync(dir).filter((n) => n.startsWith("free-")).length, 0, "claimed");
    const pieces = piecesOf(sent.frames, sent.spilled, dir);
    const got = new Uint8Array(smaller.byteLength);
    readSync((pieces[0] as { fd: number }).fd, got, 0, got.byteLength, 0);
    assert.deepEqual(got, smaller);
    releasePieces(pieces);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("at most two recycled files are kept; the rest are removed", () => {
  const dir = makeSpillDir();
  try {
    const all = receive(dir, [frame(SPILL_MIN, 1), frame(SPILL_MIN, 2), frame(SPILL_MIN, 3), frame(SPILL_MIN, 4)]);
    assert.equal(all.pieces.filter((p) => !(p instanceof Uint8Array)).length, 4);
    releasePieces(all.pieces);
    const left = readdirSync(dir);
    assert.equal(left.length, 2, `kept: ${left.join(", ")}`);
    assert.ok(left.every((n) => n.startsWith("free-")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

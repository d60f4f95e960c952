#!/usr/bin/env node
// kernel/dist/ holds what tsc emitted from kernel/src and kernel/test. tsc never
// removes an output whose source was deleted or renamed, so a deleted test would
// keep running (and a deleted module keep being packed) from a stale .js.
//
//   node scripts/kernel-dist.js prune   # remove outputs of kernel/dist whose .ts is gone
//   node scripts/kernel-dist.js tests   # print the kernel test files to run (dist/test/**/*.test.js
//                                       # whose test/**/*.test.ts exists), relative to kernel/
'use strict';
const fs = require('fs');
const path = require('path');

const KERNEL = path.resolve(__dirname, '..', 'kernel');
const DIST = path.join(KERNEL, 'dist');
const OUTPUT = /(\.d\.ts\.map|\.d\.ts|\.js\.map|\.js)$/;

function* walk(dir) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    if (e.code === 'ENOENT') return;
    throw e;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** The kernel/ source a dist/ output was emitted from (dist/test/a.test.js -> test/a.test.ts). */
function sourceOf(output) {
  const rel = path.relative(DIST, output);
  return path.join(KERNEL, rel.replace(OUTPUT, '.ts'));
}

function prune() {
  let removed = 0;
  for (const f of walk(DIST)) {
    if (!OUTPUT.test(f) || fs.existsSync(sourceOf(f))) continue;
    fs.rmSync(f);
    removed++;
  }
  removeEmptyDirs(DIST);
  if (removed) {
    // tsc's incremental state still lists the removed files; were one restored unchanged,
    // tsc would think its output current. The next build starts from scratch instead.
    fs.rmSync(path.join(DIST, '.tsbuildinfo'), { force: true });
    console.log(
      `kernel/dist: removed ${removed} output(s) whose source is gone`
    );
  }
}

function removeEmptyDirs(dir) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries)
    if (e.isDirectory()) removeEmptyDirs(path.join(dir, e.name));
  if (dir !== DIST && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
}

function tests() {
  const files = [...walk(path.join(DIST, 'test'))]
    .filter(f => f.endsWith('.test.js') && fs.existsSync(sourceOf(f)))
    .map(f => path.relative(KERNEL, f))
    .sort();
  if (files.length === 0) {
    console.error(
      'kernel-dist.js: no built kernel tests in kernel/dist/test (run scripts/setup.sh)'
    );
    process.exit(1);
  }
  console.log(files.join('\n'));
}

const cmd = process.argv[2];
if (cmd === 'prune') prune();
else if (cmd === 'tests') tests();
else {
  console.error('usage: node scripts/kernel-dist.js prune|tests');
  process.exit(2);
}

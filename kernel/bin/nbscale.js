#!/usr/bin/env node
"use strict";
// Entry point of the `nbscale` command; the compiled CLI lives in dist/.
const { main } = require("../dist/src/cli/main.js");
main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`nbscale: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);

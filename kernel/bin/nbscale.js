#!/usr/bin/env node
"use strict";
// Entry point of the `nbscale` command; the compiled CLI lives in dist/.
// The AWS SDK announces its future Node 22 requirement on every first S3/Batch
// call; in a notebook cell that notice reads like an error, so keep it out.
if (process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
}
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

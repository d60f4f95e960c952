// Preloaded into the kernel's test files (node --require): gives every top-level
// test() / it() of node:test a time limit unless it sets its own (a describe()
// is not limited as a whole: each of its tests is).
//
// Node 20's --test-timeout limits each test *file* (the runner's child process),
// so a hung test would end its whole file, reported under the file's name, with
// the results of the file's other tests lost. With this, the hung test fails by
// its own name ("test timed out after 300000ms") and the file goes on.
//
//   NBSCALE_TEST_TIMEOUT_MS   the limit, default 300000 (5 minutes)
'use strict';
const Module = require('module');

const LIMIT = Number(process.env.NBSCALE_TEST_TIMEOUT_MS || 300000);
const originalRequire = Module.prototype.require;
let patched = null;

/** fn(name?, options?, body?) with options.timeout defaulted to LIMIT. */
function limited(fn) {
  const wrapper = function (...args) {
    const i = args.findIndex(a => a !== null && typeof a === 'object');
    if (i >= 0) {
      if (args[i].timeout === undefined)
        args[i] = { ...args[i], timeout: LIMIT };
    } else {
      args.splice(typeof args[0] === 'string' ? 1 : 0, 0, { timeout: LIMIT });
    }
    return fn.apply(this, args);
  };
  Object.assign(wrapper, fn); // test.skip, test.todo, test.only, test.mock, ...
  return wrapper;
}

function patch(nodeTest) {
  const p = limited(nodeTest);
  Object.assign(p, nodeTest);
  p.test = p;
  p.default = p;
  for (const name of ['it'])
    if (typeof nodeTest[name] === 'function') p[name] = limited(nodeTest[name]);
  return p;
}

Module.prototype.require = function (id) {
  const m = originalRequire.apply(this, arguments);
  if (id !== 'node:test' && id !== 'test') return m;
  if (patched === null) patched = patch(m);
  return patched;
};

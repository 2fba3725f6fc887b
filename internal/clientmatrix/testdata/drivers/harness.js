'use strict';
// Shared by the Node.js drivers: reads the plan (argv[2], JSON), runs each
// operation in turn and prints one JSON object, operation -> result.
// A result holds the call made, the client's return value (or the message
// of what it threw) and the verdict an application would draw from it.
const fs = require('fs');

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

// read returns the bytes of one of the plan's files.
function read(name) {
  return fs.readFileSync(plan.files[name]);
}

// Each operation is bounded so that a stalled call is reported, not waited for.
function bounded(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function run(ops) {
  const out = {};
  for (const [op, call, fn] of ops) {
    try {
      const { value, verdict } = await bounded(Promise.resolve().then(fn), plan.op_timeout_ms);
      out[op] = { call, value: value === undefined ? null : value, verdict };
    } catch (e) {
      out[op] = { call, error: String(e && e.message ? e.message : e), verdict: 'error' };
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  // Sockets a client left open must not keep the driver alive.
  process.exit(0);
}

module.exports = { plan, read, run };

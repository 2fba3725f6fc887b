'use strict';
// Drives npm clamdjs through every call it offers (TCP only): ping, version,
// scanBuffer, scanFile, scanStream, scanDirectory.
const fs = require('fs');
const clamd = require('clamdjs');
const { plan, read, run } = require('./harness');

const timeout = plan.op_timeout_ms;
const scanner = clamd.createScanner(plan.host, plan.port);

// clamdjs's own test of a reply: isCleanReply.
function replyResult(reply) {
  let verdict = 'error';
  if (clamd.isCleanReply(reply)) verdict = 'clean';
  else if (reply.includes('FOUND')) verdict = 'infected';
  return { value: reply, verdict };
}

async function directory(path) {
  const r = await scanner.scanDirectory(path, { timeout });
  const results = r.Result.map((x) => JSON.stringify(x)).sort();
  let verdict = 'clean';
  if (r.Infected > 0) verdict = 'infected';
  else if (r.EncounterError > 0) verdict = 'error';
  return { value: { ScannedFiles: r.ScannedFiles, Infected: r.Infected, EncounterError: r.EncounterError, Result: results }, verdict };
}

run([
  ['ping', 'ping()', async () => ({ value: await clamd.ping(plan.host, plan.port, timeout) })],
  ['version', 'version()', async () => ({ value: await clamd.version(plan.host, plan.port, timeout) })],
  ['stream-clean', 'scanBuffer()', async () => replyResult(await scanner.scanBuffer(read('clean'), timeout))],
  ['stream-eicar', 'scanBuffer()', async () => replyResult(await scanner.scanBuffer(read('eicar'), timeout))],
  ['stream-empty', 'scanBuffer()', async () => replyResult(await scanner.scanBuffer(read('empty'), timeout))],
  ['stream-5mib', 'scanStream()', async () => replyResult(await scanner.scanStream(fs.createReadStream(plan.files.big), timeout))],
  ['stream-over-limit', 'scanBuffer()', async () => replyResult(await scanner.scanBuffer(read('over'), timeout))],
  ['file-clean', 'scanFile()', async () => replyResult(await scanner.scanFile(plan.files.clean, timeout))],
  ['file-eicar', 'scanFile()', async () => replyResult(await scanner.scanFile(plan.files.eicar, timeout))],
  ['dir-infected', 'scanDirectory()', () => directory(plan.files.dir)],
  ['dir-clean', 'scanDirectory()', () => directory(plan.files.cleandir)],
]);

'use strict';
// Drives npm clamscan (NodeClam) through every call it offers over a clamd
// socket: ping, getVersion, scanStream, passthrough, isInfected, scanDir,
// scanFiles. The plan names a unix socket or a TCP port.
const { Readable } = require('stream');
const NodeClam = require('clamscan');
const { plan, read, run } = require('./harness');

// An application tests `if (isInfected)`: null (no verdict) passes as clean.
function verdictOf(isInfected) {
  if (isInfected === true) return 'infected';
  return 'clean';
}

async function scanner(multiscan) {
  const clamdscan = { timeout: plan.op_timeout_ms, localFallback: false, multiscan, bypassTest: true, active: true };
  if (plan.unix) clamdscan.socket = plan.unix;
  else Object.assign(clamdscan, { host: plan.host, port: plan.port });
  // Without the clamdscan/clamscan binaries' paths the module may only
  // talk to the socket: no silent fallback to a local scanner.
  clamdscan.path = '/nonexistent/clamdscan';
  return new NodeClam().init({ preference: 'clamdscan', clamscan: { active: false, path: '/nonexistent/clamscan' }, clamdscan });
}

function streamResult(r) {
  return { value: { isInfected: r.isInfected, viruses: [...r.viruses].sort() }, verdict: verdictOf(r.isInfected) };
}

function dirResult(clam, path) {
  return new Promise((resolve, reject) => {
    clam.scanDir(path, (err, goodFiles, badFiles, viruses) => {
      if (err) return reject(err);
      const sorted = (a) => (a || []).map((x) => JSON.stringify(x)).sort();
      resolve({
        value: { goodFiles: sorted(goodFiles), badFiles: sorted(badFiles), viruses: sorted(viruses) },
        verdict: badFiles && badFiles.length > 0 ? 'infected' : 'clean',
      });
    });
  });
}

function passthrough(clam, data) {
  return new Promise((resolve, reject) => {
    const av = clam.passthrough();
    av.on('scan-complete', (r) => resolve(streamResult(r)));
    av.on('error', reject);
    av.on('data', () => {});
    Readable.from([data]).pipe(av);
  });
}

(async () => {
  const clam = await scanner(false);
  const multi = await scanner(true);
  await run([
    ['ping', 'ping()', async () => {
      const client = await clam.ping();
      client.end();
      return { value: true };
    }],
    ['version', 'getVersion()', async () => ({ value: await clam.getVersion() })],
    ['stream-clean', 'scanStream()', async () => streamResult(await clam.scanStream(Readable.from([read('clean')])))],
    ['stream-eicar', 'scanStream()', async () => streamResult(await clam.scanStream(Readable.from([read('eicar')])))],
    ['stream-empty', 'scanStream()', async () => streamResult(await clam.scanStream(Readable.from([])))],
    ['stream-5mib', 'scanStream()', async () => streamResult(await clam.scanStream(Readable.from([read('big')])))],
    ['stream-over-limit', 'scanStream()', async () => streamResult(await clam.scanStream(Readable.from([read('over')])))],
    ['passthrough-eicar', 'passthrough()', () => passthrough(clam, read('eicar'))],
    ['file-clean', 'isInfected()', async () => {
      const r = await clam.isInfected(plan.files.clean);
      return { value: { isInfected: r.isInfected, viruses: r.viruses }, verdict: verdictOf(r.isInfected) };
    }],
    ['file-eicar', 'isInfected()', async () => {
      const r = await clam.isInfected(plan.files.eicar);
      return { value: { isInfected: r.isInfected, viruses: r.viruses }, verdict: verdictOf(r.isInfected) };
    }],
    ['dir-infected', 'scanDir()', () => dirResult(clam, plan.files.dir)],
    ['dir-clean', 'scanDir()', () => dirResult(clam, plan.files.cleandir)],
    ['multiscan', 'scanDir(), multiscan: true', () => dirResult(multi, plan.files.dir)],
    ['file-list', 'scanFiles()', async () => {
      const r = await clam.scanFiles([plan.files.eicar, plan.files.clean]);
      return {
        value: { goodFiles: [...r.goodFiles].sort(), badFiles: [...r.badFiles].sort(), viruses: [...r.viruses].sort(),
          errors: Object.keys(r.errors || {}).sort() },
        verdict: r.badFiles.length > 0 ? 'infected' : 'clean',
      };
    }],
  ]);
})().catch((e) => {
  process.stderr.write(`clamscan driver: ${e.stack || e}\n`);
  process.exit(3);
});

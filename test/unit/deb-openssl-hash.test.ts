import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { certificateFingerprint, pemCertificates, subjectNameHash } from '../../src/executors/deb/scripts/openssl-subject-hash.js';
import { run } from '../harness/tools.js';

// The real openssl is the oracle: every certificate Debian ships on this machine.
const dir = '/usr/share/ca-certificates/mozilla';

test('subject hashes equal `openssl x509 -subject_hash` for every Mozilla root', async () => {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.crt'));
  assert.ok(names.length > 100);
  const { stdout } = await run('sh', ['-c', `for f in ${dir}/*.crt; do openssl x509 -noout -subject_hash -in "$f"; done`]);
  const expected = stdout.trim().split('\n');
  const sorted = (await run('sh', ['-c', `for f in ${dir}/*.crt; do echo "$f"; done`])).stdout.trim().split('\n');
  for (const [i, path] of sorted.entries()) {
    const der = pemCertificates(await readFile(path, 'utf8'))[0]!;
    assert.equal(subjectNameHash(der), expected[i], path);
  }
});

test('fingerprints equal `openssl x509 -fingerprint -sha1`', async () => {
  const path = `${dir}/ISRG_Root_X1.crt`;
  const { stdout } = await run('openssl', ['x509', '-noout', '-fingerprint', '-sha1', '-in', path]);
  const want = stdout.trim().split('=')[1]!.replace(/:/g, '').toLowerCase();
  assert.equal(certificateFingerprint(pemCertificates(await readFile(path, 'utf8'))[0]!), want);
});

test('a bundle yields every certificate in order; non-certificates yield none', () => {
  assert.equal(pemCertificates('no pem here').length, 0);
});

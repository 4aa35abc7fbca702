import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareDpkgVersions, parseDpkgVersion, satisfiesDpkgRelation, VersionError } from '../../src/versions/dpkg.js';
import { run } from '../harness/tools.js';

const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/dpkg.json', import.meta.url), 'utf8')) as { cases: [string, string, number][] };

test('published dpkg ordering cases', () => {
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(Math.sign(compareDpkgVersions(a, b)), sign, `${a} vs ${b}`);
    assert.equal(Math.sign(compareDpkgVersions(b, a)), -sign || 0, `${b} vs ${a}`);
  }
});

test('agrees with the real `dpkg --compare-versions` on every pair of the vectors\' versions', async () => {
  const versions = [...new Set(vectors.cases.flat().filter((v): v is string => typeof v === 'string'))];
  const script = versions.flatMap((a) => versions.map((b) => `if dpkg --compare-versions '${a}' lt '${b}'; then echo -1; elif dpkg --compare-versions '${a}' eq '${b}'; then echo 0; else echo 1; fi`)).join('\n');
  const file = join(await mkdtemp(join(tmpdir(), 'patchd-dpkg-')), 'compare.sh');
  await writeFile(file, script);
  const expected = (await run('sh', [file])).stdout.trim().split('\n').map(Number);
  let i = 0;
  for (const a of versions) for (const b of versions) assert.equal(Math.sign(compareDpkgVersions(a, b)), expected[i++], `${a} vs ${b}`);
});

test('relations and parsing', () => {
  assert.ok(satisfiesDpkgRelation('2.6.2', '>=', '2.6.2'));
  assert.ok(!satisfiesDpkgRelation('2.6.1', '>=', '2.6.2'));
  assert.ok(satisfiesDpkgRelation('1.0~rc1', '<<', '1.0'));
  assert.deepEqual(parseDpkgVersion('1:2.3-4-5'), { epoch: 1, upstream: '2.3-4', revision: '5' });
  assert.throws(() => parseDpkgVersion('a b'), VersionError);
  assert.throws(() => parseDpkgVersion('x:1'), VersionError);
});

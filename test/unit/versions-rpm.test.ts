import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { compareVersions } from '../../src/versions/index.js';
import { compareRpmEvr, compareRpmEvrLoose, compareRpmVersions, parseEvr } from '../../src/versions/rpm.js';
import { VersionError } from '../../src/versions/errors.js';
import { run } from '../harness/tools.js';

type Case = [string, string, number];
const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/rpm.json', import.meta.url), 'utf8')) as { cases: Case[]; evr: Case[] };

test('published rpmvercmp cases, both ways', () => {
  assert.ok(vectors.cases.length >= 90);
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(Math.sign(compareRpmVersions(a, b)), sign, `${a} vs ${b}`);
    assert.equal(Math.sign(compareRpmVersions(b, a)), -sign || 0, `${b} vs ${a}`);
    // The published test feeds them to rpm.vercmp, i.e. through the EVR parser.
    assert.equal(Math.sign(compareRpmEvr(a, b)), sign, `evr ${a} vs ${b}`);
  }
});

test('published EVR cases (rpm.ver objects), both ways', () => {
  for (const [a, b, sign] of vectors.evr) {
    assert.equal(Math.sign(compareRpmEvr(a, b)), sign, `${a} vs ${b}`);
    assert.equal(Math.sign(compareRpmEvr(b, a)), -sign || 0, `${b} vs ${a}`);
  }
});

// Every pair of the vectors' versions, plus EVRs with epochs and releases, against the real rpm on this machine.
test('agrees with the real `rpm.vercmp` on every pair', async () => {
  const versions = [...new Set([
    ...vectors.cases.flatMap(([a, b]) => [a, b]),
    ...vectors.evr.flatMap(([a, b]) => [a, b]),
    '3.0.7-27.el9', '3.0.7-28.el9', '1:3.0.7-27.el9', '3.0.7', '0:3.0.7-27.el9_4', '3.0.7-27.el9_4.1', '2.9.13-6.el9_4~rc1',
  ])];
  const lua = `%{lua: local v = {${versions.map((v) => `"${v}"`).join(',')}}; local out = {}; for i = 1, #v do for j = 1, #v do out[#out + 1] = rpm.vercmp(v[i], v[j]) end end; print(table.concat(out, ","))}`;
  const expected = (await run('rpm', ['--eval', lua])).stdout.trim().split(',').map(Number);
  assert.equal(expected.length, versions.length ** 2);
  let k = 0;
  for (const a of versions) for (const b of versions) assert.equal(Math.sign(compareRpmEvr(a, b)), Math.sign(expected[k++]!), `${a} vs ${b}`);
});

test('EVR parsing: missing epoch is 0, the release follows the last dash', () => {
  assert.deepEqual(parseEvr('1:4.16-5'), { epoch: 1, version: '4.16', release: '5' });
  assert.deepEqual(parseEvr('4.16'), { epoch: 0, version: '4.16' });
  assert.deepEqual(parseEvr('0:1.2-3.el9'), { epoch: 0, version: '1.2', release: '3.el9' });
  assert.equal(compareRpmEvr('0:1.0-1', '1.0-1'), 0);
  assert.throws(() => parseEvr(''), VersionError);
  assert.throws(() => parseEvr('x:1.0'), /invalid rpm version "x:1.0"/);
});

test('advisory matching (compareVersions) ignores a release only one side has', () => {
  assert.equal(compareRpmEvr('3.0.7-27.el9', '3.0.7'), 1);
  assert.equal(compareRpmEvrLoose('3.0.7-27.el9', '3.0.7'), 0);
  assert.equal(compareVersions('rpm', '3.0.7-27.el9', '3.0.7'), 0);
  assert.equal(compareVersions('rpm', '3.0.7-27.el9', '3.0.7-28.el9'), -1);
  assert.equal(compareVersions('rpm', '1:1.0-1', '2.0-1'), 1);
});

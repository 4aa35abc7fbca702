import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { compareApkVersions, isValidApkVersion } from '../../src/versions/apk.js';
import { VersionError } from '../../src/versions/errors.js';

const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/apk.json', import.meta.url), 'utf8')) as {
  cases: [string, string, number][];
  valid: string[];
  invalid: string[];
};

test('published apk-tools ordering cases, both ways', () => {
  assert.ok(vectors.cases.length >= 700);
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(Math.sign(compareApkVersions(a, b)), sign, `${a} vs ${b}`);
    assert.equal(Math.sign(compareApkVersions(b, a)), -sign || 0, `${b} vs ${a}`);
  }
});

test('published apk-tools validity cases', () => {
  for (const v of vectors.valid) assert.ok(isValidApkVersion(v), v);
  for (const v of vectors.invalid) assert.ok(!isValidApkVersion(v), v);
});

test('suffixes: pre-releases below the bare version, the rest above it and above its revisions', () => {
  const ordered = ['1.0_alpha', '1.0_beta', '1.0_pre', '1.0_rc1', '1.0', '1.0-r1', '1.0_cvs', '1.0_svn', '1.0_git', '1.0_hg', '1.0_p1', '1.0a'];
  for (let i = 1; i < ordered.length; i++) assert.equal(compareApkVersions(ordered[i - 1]!, ordered[i]!), -1, `${ordered[i - 1]} < ${ordered[i]}`);
  assert.equal(compareApkVersions('3.0.15-r0', '3.0.15-r1'), -1);
  assert.equal(compareApkVersions('9.1.0707-r0', '9.1.1000-r0'), -1);
});

test('a version with no leading number is refused', () => {
  assert.throws(() => compareApkVersions('r1', '1.0'), VersionError);
  assert.throws(() => compareApkVersions('1.0', ''), /invalid apk version ""/);
});

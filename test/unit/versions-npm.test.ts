import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { compareNpmVersions, parseNpmVersion } from '../../src/versions/npm.js';
import { versionParts } from '../../src/versions/index.js';
import { VersionError } from '../../src/versions/errors.js';

const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/npm.json', import.meta.url), 'utf8')) as {
  cases: [string, string, number][];
  invalid: string[];
};

test('published node-semver comparison and equality cases, both ways', () => {
  assert.ok(vectors.cases.length >= 30);
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(compareNpmVersions(a, b), sign, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(compareNpmVersions(b, a), -sign || 0, `${JSON.stringify(b)} vs ${JSON.stringify(a)}`);
  }
});

test('junk is refused with a VersionError naming it', () => {
  for (const v of vectors.invalid) assert.throws(() => parseNpmVersion(v), VersionError, v);
  assert.throws(() => compareNpmVersions('x.y.z', '1.0.0'), /invalid npm version "x.y.z"/);
});

test('loose forms parse; versionParts reads major.minor.patch', () => {
  assert.equal(parseNpmVersion('01.02.03').version, '1.2.3');
  assert.deepEqual(versionParts('npm', 'v1.2.5'), { major: 1, minor: 2, patch: 5 });
  assert.deepEqual(versionParts('npm', '2.0.0-rc.1+build.5'), { major: 2, minor: 0, patch: 0 });
  assert.equal(versionParts('npm', 'latest'), undefined);
});

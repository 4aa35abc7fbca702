import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { compareNuGetVersions, parseNuGetVersion } from '../../src/versions/nuget.js';
import { versionParts } from '../../src/versions/index.js';
import { VersionError } from '../../src/versions/errors.js';

const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/nuget.json', import.meta.url), 'utf8')) as {
  cases: [string, string, number][];
  invalid: string[];
};

test('published NuGet.Versioning ordering cases, both ways', () => {
  assert.ok(vectors.cases.length >= 30);
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(compareNuGetVersions(a, b), sign, `${a} vs ${b}`);
    assert.equal(compareNuGetVersions(b, a), -sign || 0, `${b} vs ${a}`);
  }
});

test('published invalid versions are refused with a VersionError', () => {
  for (const v of vectors.invalid) assert.throws(() => parseNuGetVersion(v), VersionError, v);
  assert.throws(() => parseNuGetVersion(''), /invalid NuGet version ""/);
});

test('four parts, leading zeros and missing parts normalise', () => {
  assert.deepEqual(parseNuGetVersion('  1.0.0009.01-1.1+A '), { parts: [1, 0, 9, 1], release: ['1', '1'] });
  assert.deepEqual(parseNuGetVersion('2.3-alpha'), { parts: [2, 3, 0, 0], release: ['alpha'] });
  assert.deepEqual(parseNuGetVersion('1'), { parts: [1, 0, 0, 0], release: [] });
  assert.deepEqual(versionParts('nuget', '13.0.1.0'), { major: 13, minor: 0, patch: 1 });
  assert.deepEqual(versionParts('nuget', '6.0.0-rc.1.21451.13'), { major: 6, minor: 0, patch: 0 });
});

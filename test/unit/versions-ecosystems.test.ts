import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { compareVersions, versionParts } from '../../src/versions/index.js';
import { isPseudoVersion } from '../../src/versions/gomod.js';
import { run } from '../harness/tools.js';

type Vectors = { source: string; cases: [string, string, number][] };
const load = async (name: string) => JSON.parse(await readFile(new URL(`../../fixtures/versions/${name}.json`, import.meta.url), 'utf8')) as Vectors;

// Each scheme's published vectors run both ways in its own versions-<scheme>.test.ts; this file
// holds the cross-scheme facts and the PEP 440 check against packaging itself.

test('agrees with pypa/packaging (pip\'s vendored copy) on every pair of the PEP 440 vectors\' versions', async () => {
  const versions = [...new Set((await load('pep440')).cases.flatMap(([a, b]) => [a, b]))];
  const script = `import json,sys\nfrom pip._vendor.packaging.version import Version\nv=json.load(sys.stdin)\nprint(json.dumps([[(Version(a)>Version(b))-(Version(a)<Version(b)) for b in v] for a in v]))`;
  const { stdout } = await run('python3', ['-c', script], { input: JSON.stringify(versions) });
  const expected = JSON.parse(stdout) as number[][];
  versions.forEach((a, i) => versions.forEach((b, j) => assert.equal(compareVersions('pypi', a, b), expected[i]![j], `${a} vs ${b}`)));
});

test('rpm EVR: epochs first; a fix without a release covers every release of its version', () => {
  assert.equal(compareVersions('rpm', '1:1.0-1', '2.0-1'), 1);
  assert.equal(compareVersions('rpm', '3.0.7-27.el9', '3.0.7-28.el9'), -1);
  assert.equal(compareVersions('rpm', '3.0.7-27.el9', '3.0.7'), 0);
  assert.equal(compareVersions('rpm', '2:2.3.1-4', '2:2.3.1-4'), 0);
});

test('bumps are judged on major.minor.patch; Go pseudo-versions are recognised', () => {
  assert.deepEqual(versionParts('pypi', '2.6.0'), { major: 2, minor: 6, patch: 0 });
  assert.deepEqual(versionParts('pypi', '2!1.2'), { major: 1, minor: 2, patch: 0 });
  assert.deepEqual(versionParts('npm', 'v1.2.5'), { major: 1, minor: 2, patch: 5 });
  assert.deepEqual(versionParts('go', 'v0.3.6'), { major: 0, minor: 3, patch: 6 });
  assert.deepEqual(versionParts('nuget', '13.0.1.0'), { major: 13, minor: 0, patch: 1 });
  assert.equal(versionParts('pypi', 'not a version'), undefined);
  assert.ok(isPseudoVersion('v0.0.0-20191109021931-daa7c04131f5'));
  assert.ok(isPseudoVersion('v1.2.4-0.20191109021931-daa7c04131f5'));
  assert.ok(!isPseudoVersion('v1.2.4-pre'));
});

test('invalid versions are refused by name, not ordered by accident', () => {
  assert.throws(() => compareVersions('pypi', 'french toast', '1.0'), /invalid PEP 440 version "french toast"/);
  assert.throws(() => compareVersions('go', 'v1-pre', 'v1.0.0'), /invalid Go module version/);
  assert.throws(() => compareVersions('npm', 'x.y.z', '1.0.0'), /invalid npm version/);
  assert.throws(() => compareVersions('nuget', '1.0.0-', '1.0.0'), /invalid NuGet version/);
  assert.throws(() => compareVersions('alpine', 'r1', '1.0'), /invalid apk version/);
});

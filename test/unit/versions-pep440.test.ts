import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { comparePep440, parsePep440 } from '../../src/versions/pep440.js';
import { VersionError } from '../../src/versions/errors.js';
import { run } from '../harness/tools.js';

const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/pep440.json', import.meta.url), 'utf8')) as {
  cases: [string, string, number][];
  invalid: string[];
};

test('published PEP 440 ordering and normalisation cases, both ways', () => {
  assert.ok(vectors.cases.length >= 150);
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(comparePep440(a, b), sign, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(comparePep440(b, a), -sign || 0, `${JSON.stringify(b)} vs ${JSON.stringify(a)}`);
  }
});

test('published invalid versions are refused with a VersionError', () => {
  for (const v of vectors.invalid) assert.throws(() => parsePep440(v), VersionError, JSON.stringify(v));
});

test('parsing normalises spellings and numbers', () => {
  assert.deepEqual(parsePep440('1!2.0.1rc3.post4.dev5+Ubuntu-1.2'), { epoch: 1, release: [2, 0, 1], pre: ['rc', 3], post: 4, dev: 5, local: ['ubuntu', 1, 2] });
  assert.deepEqual(parsePep440(' v1.0-ALPHA '), { epoch: 0, release: [1, 0], pre: ['a', 0] });
  assert.deepEqual(parsePep440('1.0c056'), { epoch: 0, release: [1, 0], pre: ['rc', 56] });
  assert.deepEqual(parsePep440('1.0-5'), { epoch: 0, release: [1, 0], post: 5 });
  assert.deepEqual(parsePep440('1.0.dev'), { epoch: 0, release: [1, 0], dev: 0 });
  assert.equal(comparePep440('1.0', '1.0.0.0'), 0);
  assert.throws(() => parsePep440('french toast'), /invalid PEP 440 version "french toast"/);
});

// pypa/packaging is the reference implementation: compare every pair of the vectors' versions with pip's
// vendored copy (always there with pip) and with a standalone install when there is one.
for (const module of ['pip._vendor.packaging.version', 'packaging.version']) {
  test(`agrees with ${module} on every pair of the vectors' versions`, async (t) => {
    const probe = await run('python3', ['-c', `import ${module}`], { allowFailure: true });
    if (probe.code !== 0) return t.skip(`${module} is not importable here`);
    const versions = [...new Set(vectors.cases.flatMap(([a, b]) => [a, b]))];
    const script = [
      'import json, sys',
      `from ${module} import Version`,
      'v = [Version(s) for s in json.load(sys.stdin)]',
      'print(json.dumps([[(a > b) - (a < b) for b in v] for a in v]))',
    ].join('\n');
    const { stdout } = await run('python3', ['-c', script], { input: JSON.stringify(versions) });
    const expected = JSON.parse(stdout) as number[][];
    versions.forEach((a, i) => versions.forEach((b, j) => assert.equal(comparePep440(a, b), expected[i]![j], `${JSON.stringify(a)} vs ${JSON.stringify(b)}`)));
  });
}

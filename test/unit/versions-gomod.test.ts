import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareGoVersions, isPseudoVersion, isValidGoVersion, parseGoVersion } from '../../src/versions/gomod.js';
import { versionParts } from '../../src/versions/index.js';
import { VersionError } from '../../src/versions/errors.js';
import { run } from '../harness/tools.js';

const vectors = JSON.parse(await readFile(new URL('../../fixtures/versions/gomod.json', import.meta.url), 'utf8')) as {
  cases: [string, string, number][];
  invalid: string[];
  pseudo: string[];
  pseudoBases: string[];
};

test('published golang.org/x/mod ordering cases, both ways', () => {
  assert.ok(vectors.cases.length >= 30);
  for (const [a, b, sign] of vectors.cases) {
    assert.equal(compareGoVersions(a, b), sign, `${a} vs ${b}`);
    assert.equal(compareGoVersions(b, a), -sign || 0, `${b} vs ${a}`);
  }
});

test('published invalid versions are refused, not sorted first as x/mod would', () => {
  for (const v of vectors.invalid) {
    assert.ok(!isValidGoVersion(v), v);
    assert.throws(() => compareGoVersions(v, 'v1.0.0'), VersionError, v);
  }
  assert.throws(() => parseGoVersion('1.2.3'), /invalid Go module version "1.2.3"/);
  assert.throws(() => parseGoVersion('v1.2.3-01'), VersionError);
});

test('pseudo-versions are recognised (module.IsPseudoVersion) and order as pre-releases', () => {
  for (const v of vectors.pseudo) assert.ok(isPseudoVersion(v), v);
  for (const v of vectors.pseudoBases) assert.ok(!isPseudoVersion(v), v);
  assert.ok(!isPseudoVersion('v1.2.4-pre'));
  assert.equal(compareGoVersions('v0.0.0-20191109021931-daa7c04131f5', 'v0.0.1'), -1);
  assert.equal(compareGoVersions('v1.2.4-0.20191109021931-daa7c04131f5', 'v1.2.4'), -1);
  assert.equal(compareGoVersions('v2.0.0+incompatible', 'v2.0.0'), 0);
});

test('versionParts reads the three numbers, shorthands included', () => {
  assert.deepEqual(versionParts('go', 'v1.2'), { major: 1, minor: 2, patch: 0 });
  assert.deepEqual(versionParts('go', 'v0.0.0-20191109021931-daa7c04131f5'), { major: 0, minor: 0, patch: 0 });
  assert.equal(versionParts('go', 'v1.2-pre'), undefined);
});

// A throwaway program over the golang.org/x/mod already in the module cache; offline only, skipped when that fails.
test('agrees with golang.org/x/mod (semver.Compare, module.IsPseudoVersion) on every pair', async (t) => {
  const versions = [...new Set([...vectors.cases.flatMap(([a, b]) => [a, b]), ...vectors.pseudo])];
  const dir = await mkdtemp(join(tmpdir(), 'patchd-gosemver-'));
  try {
    await writeFile(join(dir, 'go.mod'), 'module patchd.test/gosemver\n\ngo 1.21\n\nrequire golang.org/x/mod v0.38.0\n');
    await writeFile(join(dir, 'main.go'), `package main

import (
	"encoding/json"
	"os"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

func main() {
	var vs []string
	if err := json.NewDecoder(os.Stdin).Decode(&vs); err != nil {
		panic(err)
	}
	var out struct {
		Cmp    [][]int \`json:"cmp"\`
		Pseudo []bool  \`json:"pseudo"\`
	}
	for _, a := range vs {
		row := []int{}
		for _, b := range vs {
			row = append(row, semver.Compare(a, b))
		}
		out.Cmp = append(out.Cmp, row)
		out.Pseudo = append(out.Pseudo, module.IsPseudoVersion(a))
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
`);
    const env = { ...process.env, GOPROXY: 'off', GOSUMDB: 'off', GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' };
    const res = await run('go', ['run', '.'], { cwd: dir, env, input: JSON.stringify(versions), allowFailure: true, timeoutMs: 120_000 }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
    if (res.code !== 0) return t.skip(`go run over the cached golang.org/x/mod did not work offline: ${res.stderr.split('\n')[0]}`);
    const expected = JSON.parse(res.stdout) as { cmp: number[][]; pseudo: boolean[] };
    versions.forEach((a, i) => {
      assert.equal(isPseudoVersion(a), expected.pseudo[i], `isPseudoVersion(${a})`);
      versions.forEach((b, j) => assert.equal(compareGoVersions(a, b), expected.cmp[i]![j], `${a} vs ${b}`));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

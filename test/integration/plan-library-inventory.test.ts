import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { LibraryIndex, PublishedVersions } from '../../src/plan/library-index.js';
import { LibraryIndexError } from '../../src/plan/library-index.js';
import { planLibraryUpgrades } from '../../src/plan/library-upgrades.js';
import { matchOsv } from '../../src/scan/match.js';
import { scanLayers } from '../../src/scan/scan.js';
import { OsvDatabase } from '../../src/scan/sources/osv.js';
import type { Ecosystem } from '../../src/versions/index.js';
import { appLayersDir } from '../harness/fixture-image.js';
import { entriesFromDir, layerFromEntries, layerFromTarFile } from '../harness/layers.js';

const fixtures = new URL('../../fixtures/', import.meta.url).pathname;

// What the package sources publish, as far as this image needs (the HTTP index is exercised against the real ones in e2e).
const published: Record<string, PublishedVersions> = {
  'pypi:urllib3': { versions: ['2.0.5', '2.0.6', '2.0.7', '2.2.2'], source: 'pypi' },
  'nuget:Newtonsoft.Json': { versions: ['12.0.1', '13.0.1'], source: 'nuget' },
  'go:golang.org/x/text': { versions: ['v0.3.6', 'v0.3.7', 'v0.3.8'], source: 'goproxy' },
};
const index: LibraryIndex = {
  async versions(ecosystem: Ecosystem, name: string) {
    const answer = published[`${ecosystem}:${name}`];
    if (!answer) throw new LibraryIndexError('PACKAGE_NOT_FOUND', `${name}: not published there (HTTP 404)`);
    return answer;
  },
};

test('an image\'s libraries, scanned and matched, planned place by place: go.mod planned, binaries, vendored and distro copies reported', async () => {
  const site = 'usr/local/lib/python3.11/site-packages';
  const venv = 'opt/app/venv/lib/python3.11/site-packages';
  const meta = (name: string, version: string) => `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n\nbody\n`;
  const deps = await readFile(join(fixtures, 'inventory/dotnet/app/demo.deps.json'));
  const { inventory } = await scanLayers([
    layerFromTarFile(join(await appLayersDir(), 'gotext.tar')),
    await layerFromEntries([
      { path: 'etc/os-release', content: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' },
      ...await entriesFromDir(join(fixtures, 'inventory/gomod')),
      // One release in two places, twice: site-packages and a venv; two apps' deps.json in one folder.
      { path: `${site}/urllib3-2.0.5.dist-info/METADATA`, content: meta('urllib3', '2.0.5') },
      { path: `${venv}/urllib3-2.0.5.dist-info/METADATA`, content: meta('urllib3', '2.0.5') },
      { path: 'app/api.deps.json', content: deps },
      { path: 'app/worker.deps.json', content: deps },
      { path: `${site}/some_pkg/bundled/certifi-2022.12.7.dist-info/METADATA`, content: meta('certifi', '2022.12.7') },
      { path: 'usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO', content: meta('requests', '2.28.1') },
    ]),
  ]);
  const findings = matchOsv(inventory.packages, inventory.os, await OsvDatabase.load([join(fixtures, 'osv')]));
  const plan = await planLibraryUpgrades({ findings, level: 'major', index });
  assert.deepEqual(plan.upgrades.map((u) => `${u.ecosystem} ${u.name} ${u.from}->${u.to} ${u.path} @${u.location}`), [
    'nuget Newtonsoft.Json 12.0.1->13.0.1 app/api.deps.json @app',
    'nuget Newtonsoft.Json 12.0.1->13.0.1 app/worker.deps.json @app',
    'go golang.org/x/text v0.3.6->v0.3.8 srv/app/go.mod @srv/app',
    `pypi urllib3 2.0.5->2.2.2 ${venv}/urllib3-2.0.5.dist-info/METADATA @${venv}`,
    `pypi urllib3 2.0.5->2.2.2 ${site}/urllib3-2.0.5.dist-info/METADATA @${site}`,
  ]);
  assert.deepEqual(plan.upgrades.find((u) => u.ecosystem === 'go')?.reasons, ['GO-2021-0113', 'GO-2022-1059']);
  const skipped = plan.skipped.map((s) => `${s.name} ${s.path}: ${s.reason.replace(/ \(revision \w+\)$/, '')}`);
  assert.deepEqual(skipped, [
    `certifi ${site}/some_pkg/bundled/certifi-2022.12.7.dist-info/METADATA: vendored inside some_pkg: upgrade some_pkg`,
    'golang.org/x/text usr/local/bin/gotext: usr/local/bin/gotext is built from golang.org/x/text v0.3.6 itself (its main module): fixing it needs the binary rebuilt from a fixed release',
  ]);
  // The distribution's requests (dist-packages) never met PyPI's advisories.
  assert.ok(!findings.some((f) => f.package.name === 'requests'), 'no PyPI findings for the distribution\'s requests');
});

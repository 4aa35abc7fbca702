import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LibraryIndex, PublishedVersions } from '../../src/plan/library-index.js';
import { LibraryIndexError } from '../../src/plan/library-index.js';
import { chooseFixedVersion, combineChoices } from '../../src/plan/library-level.js';
import { planLibraryUpgrades } from '../../src/plan/library-upgrades.js';
import type { InstalledPackage } from '../../src/scan/inventory/types.js';
import { findingsFromTrivyReport } from '../../src/scan/sources/trivy.js';
import type { Finding } from '../../src/scan/types.js';
import type { Ecosystem } from '../../src/versions/index.js';

// The seeds' examples (Copa's "Patch Level Behavior"), one by one.
test('patch level: 2.6.0 → 2.6.1 allowed, 2.7.0 and 3.0.0 blocked', () => {
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['2.6.1'], 'patch'), { kind: 'chosen', version: '2.6.1' });
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['2.7.0'], 'patch'), { kind: 'blocked', needed: '2.7.0' });
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['3.0.0'], 'patch'), { kind: 'blocked', needed: '3.0.0' });
});

test('minor level: 2.6.0 → 2.7.0 allowed, 3.0.0 blocked; 2.6.1 preferred over 2.7.0', () => {
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['2.7.0'], 'minor'), { kind: 'chosen', version: '2.7.0' });
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['3.0.0'], 'minor'), { kind: 'blocked', needed: '3.0.0' });
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['2.7.0', '2.6.1'], 'minor'), { kind: 'chosen', version: '2.6.1' });
});

test('major level: anything allowed; with comma-separated versions Patch > Minor > Major (2.6.1 over 2.7.0 and 3.0.0)', () => {
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['3.0.0'], 'major'), { kind: 'chosen', version: '3.0.0' });
  assert.deepEqual(chooseFixedVersion('pypi', '2.6.0', ['2.6.1', '2.7.0'], 'major'), { kind: 'chosen', version: '2.6.1' });
  assert.deepEqual(chooseFixedVersion('npm', '2.6.0', ['3.0.0', '2.7.0'], 'major'), { kind: 'chosen', version: '2.7.0' });
  // Within one bump, the lowest fix (the smallest change that fixes it).
  assert.deepEqual(chooseFixedVersion('pypi', '1.26.5', ['1.26.19', '2.2.2'], 'major'), { kind: 'chosen', version: '1.26.19' });
});

test('major level without comma-separated versions: the highest, so every CVE is fixed', () => {
  const combined = combineChoices('pypi', '2.6.0', [{ id: 'CVE-1', fixed: ['2.6.1'] }, { id: 'CVE-2', fixed: ['3.0.0'] }, { id: 'CVE-3', fixed: ['2.7.0'] }], 'major');
  assert.deepEqual(combined, { target: '3.0.0', fixes: ['CVE-1', 'CVE-2', 'CVE-3'], blocked: [] });
  // At patch level the same findings fix what the level allows and report the rest.
  const patch = combineChoices('pypi', '2.6.0', [{ id: 'CVE-1', fixed: ['2.6.1'] }, { id: 'CVE-2', fixed: ['3.0.0'] }], 'patch');
  assert.deepEqual(patch, { target: '2.6.1', fixes: ['CVE-1'], blocked: [{ id: 'CVE-2', needed: '3.0.0' }] });
});

test('Go and 0.x versions: bumps are judged on major.minor.patch as written', () => {
  assert.deepEqual(chooseFixedVersion('go', 'v0.3.6', ['v0.3.7'], 'patch'), { kind: 'chosen', version: 'v0.3.7' });
  assert.deepEqual(chooseFixedVersion('npm', '0.0.8', ['0.2.4', '1.2.6'], 'patch'), { kind: 'blocked', needed: '0.2.4' });
  assert.deepEqual(chooseFixedVersion('npm', '0.0.8', ['0.2.4', '1.2.6'], 'minor'), { kind: 'chosen', version: '0.2.4' });
  assert.deepEqual(chooseFixedVersion('nuget', '12.0.1', ['13.0.1'], 'major'), { kind: 'chosen', version: '13.0.1' });
});

// A package index with fixed answers: the unit under test is the planner's rules;
// the HTTP index is exercised against the real PyPI/npm in the e2e test.
function index(table: Record<string, PublishedVersions | Error>): LibraryIndex {
  return {
    async versions(ecosystem: Ecosystem, name: string) {
      const answer = table[`${ecosystem}:${name}`];
      if (!answer) throw new LibraryIndexError('PACKAGE_NOT_FOUND', `${name}: not published there (HTTP 404)`);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}
const pkg = (ecosystem: Ecosystem, name: string, version: string, extra: Partial<InstalledPackage> = {}): InstalledPackage => ({
  ecosystem, class: 'library', name, version, purl: `pkg:${ecosystem}/${name}@${version}`, path: `lib/${name}`, location: 'lib', ...extra,
});
const finding = (p: InstalledPackage, id: string, fixed: string[]): Finding => ({ package: p, id, aliases: [], fixedVersions: fixed, severity: 'HIGH', source: 'trivy' });

test('certifi always goes to the latest release, whatever the level', async () => {
  const certifi = pkg('pypi', 'certifi', '2022.12.7');
  const plan = await planLibraryUpgrades({
    findings: [finding(certifi, 'GHSA-xqr8-7jwr-rhp7', ['2023.07.22'])], level: 'patch',
    index: index({ 'pypi:certifi': { versions: ['2022.12.7', '2023.7.22', '2026.10.5'], latest: '2026.10.5', source: 'pypi' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => [u.name, u.from, u.to, u.reasons, u.executor]), [['certifi', '2022.12.7', '2026.10.5', ['GHSA-xqr8-7jwr-rhp7'], 'buildkit']]);
});

test('npm and corepack are never patched; a direct npm dependency is reported, a transitive one planned', async () => {
  const plan = await planLibraryUpgrades({
    findings: [
      finding(pkg('npm', 'npm', '9.6.7', { global: true, direct: true }), 'GHSA-npm', ['9.9.9']),
      finding(pkg('npm', 'corepack', '0.17.0', { global: true, direct: true }), 'GHSA-corepack', ['0.17.1']),
      finding(pkg('npm', 'lodash', '4.17.20', { direct: true, location: 'srv/app' }), 'GHSA-35jh-r3h4-6jhm', ['4.17.21']),
      finding(pkg('npm', 'minimist', '1.2.5', { direct: false, location: 'srv/app' }), 'GHSA-xvch-5gv4-984h', ['1.2.6']),
      finding(pkg('npm', 'typescript', '4.9.5', { global: true, direct: true, location: 'usr/local/lib' }), 'GHSA-ts', ['4.9.6']),
    ],
    level: 'patch',
    index: index({ 'npm:minimist': { versions: ['1.2.5', '1.2.6'], source: 'npm' }, 'npm:typescript': { versions: ['4.9.5', '4.9.6'], source: 'npm' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => `${u.name} ${u.from}->${u.to}`), ['minimist 1.2.5->1.2.6', 'typescript 4.9.5->4.9.6']);
  const why = Object.fromEntries(plan.skipped.map((s) => [s.name, s.reason]));
  assert.match(why['npm']!, /never patched/);
  assert.match(why['corepack']!, /never patched/);
  assert.match(why['lodash']!, /direct dependency of srv\/app\/package\.json.*EOVERRIDE/);
});

test('.NET: Microsoft.Build.* and runtime/platform packs are skipped, other packages planned', async () => {
  const plan = await planLibraryUpgrades({
    findings: [
      finding(pkg('nuget', 'Microsoft.Build.Framework', '17.3.2'), 'CVE-B', ['17.3.4']),
      finding(pkg('nuget', 'Microsoft.NETCore.App.Runtime.linux-x64', '8.0.0'), 'CVE-R', ['8.0.11']),
      finding(pkg('nuget', 'Microsoft.AspNetCore.App.Ref', '8.0.0'), 'CVE-A', ['8.0.11']),
      finding(pkg('nuget', 'Newtonsoft.Json', '12.0.1'), 'GHSA-5crp-9r3c-p9vr', ['13.0.1']),
    ],
    level: 'major',
    index: index({ 'nuget:Newtonsoft.Json': { versions: ['12.0.1', '13.0.1'], source: 'nuget' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => `${u.name} ${u.to}`), ['Newtonsoft.Json 13.0.1']);
  assert.deepEqual(plan.skipped.map((s) => s.name).sort(), ['Microsoft.AspNetCore.App.Ref', 'Microsoft.Build.Framework', 'Microsoft.NETCore.App.Runtime.linux-x64']);
  assert.match(plan.skipped.find((s) => s.name === 'Microsoft.Build.Framework')!.reason, /SDK\/build-time/);
  assert.match(plan.skipped.find((s) => s.name.includes('Runtime'))!.reason, /NU1213/);
});

test('a fixed version the package source does not publish is reported, not attempted (the torch 2.0.2.7.1-rc1 case)', async () => {
  const plan = await planLibraryUpgrades({
    findings: [finding(pkg('pypi', 'torch', '2.0.1'), 'GHSA-3749-ghw9-m3mg', ['2.0.2.7.1-rc1'])],
    level: 'major',
    index: index({ 'pypi:torch': { versions: ['2.0.1', '2.1.0'], latest: '2.1.0', source: 'https://pypi.org/pypi/torch/json' } }),
  });
  assert.deepEqual(plan.upgrades, []);
  assert.match(plan.skipped[0]!.reason, /fixed version 2\.0\.2\.7\.1-rc1 is not published on https:\/\/pypi\.org\/pypi\/torch\/json/);
});

test('blocked by level, unreachable index, Go binaries and distro-owned Python are reported with their reasons', async () => {
  const plan = await planLibraryUpgrades({
    findings: [
      finding(pkg('pypi', 'urllib3', '1.26.5'), 'CVE-X', ['2.0.0']),
      finding(pkg('pypi', 'requests', '2.25.1'), 'CVE-Y', ['2.25.2']),
      finding(pkg('go', 'golang.org/x/text', 'v0.3.6', { path: 'usr/local/bin/hello', goBinary: { mainModule: 'm', goVersion: 'go1.26.8', vcsRevision: 'abc' } }), 'GO-2021-0113', ['v0.3.7']),
      finding(pkg('go', 'stdlib', 'v1.26.8', { path: 'usr/local/bin/hello' }), 'GO-STD', ['v1.26.9']),
      finding(pkg('pypi', 'six', '1.16.0', { location: 'usr/lib/python3/dist-packages' }), 'CVE-Z', ['1.16.1']),
    ],
    level: 'patch',
    index: index({ 'pypi:urllib3': { versions: ['1.26.5', '2.0.0'], source: 'pypi' }, 'pypi:requests': new LibraryIndexError('INDEX_UNREACHABLE', 'https://pypi.org/pypi/requests/json: HTTP 503') }),
  });
  assert.deepEqual(plan.upgrades, []);
  const why = Object.fromEntries(plan.skipped.map((s) => [s.name, s.reason]));
  assert.match(why['urllib3']!, /needs 2\.0\.0, a bigger change than --library-patch-level patch allows/);
  assert.match(why['requests']!, /HTTP 503/);
  assert.match(why['golang.org/x/text']!, /compiled into usr\/local\/bin\/hello.*rebuilt.*revision abc/);
  assert.match(why['stdlib']!, /newer Go toolchain/);
  assert.match(why['six']!, /distribution package manager/);
});

test('several findings for one package: one upgrade to the highest choice, with every finding it fixes', async () => {
  const urllib3 = pkg('pypi', 'urllib3', '1.26.5');
  const plan = await planLibraryUpgrades({
    findings: [
      finding(urllib3, 'GHSA-v845-jxx5-vc9f', ['1.26.17', '2.0.6']),
      finding(urllib3, 'GHSA-g4mx-q9vg-27p4', ['1.26.18', '2.0.7']),
      finding(urllib3, 'GHSA-34jh-p97f-mpxf', ['1.26.19', '2.2.2']),
    ],
    level: 'patch',
    index: index({ 'pypi:urllib3': { versions: ['1.26.5', '1.26.17', '1.26.18', '1.26.19', '2.2.2'], source: 'pypi' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => [u.to, u.reasons]), [['1.26.19', ['GHSA-v845-jxx5-vc9f', 'GHSA-g4mx-q9vg-27p4', 'GHSA-34jh-p97f-mpxf']]]);
  assert.deepEqual(plan.skipped, []);
});

test('a fixed version that cannot be parsed costs only its own advisory: reported with the version and why, the rest planned', async () => {
  const urllib3 = pkg('pypi', 'urllib3', '1.26.5', { path: 'usr/local/lib/python3.11/site-packages/urllib3-1.26.5.dist-info/METADATA', location: 'usr/local/lib/python3.11/site-packages' });
  const requests = pkg('pypi', 'requests', '2.25.1');
  const plan = await planLibraryUpgrades({
    findings: [
      finding(urllib3, 'GHSA-v845-jxx5-vc9f', ['1.26.17', '2.0.6']),
      finding(urllib3, 'CVE-BROKEN', ['see advisory']),
      finding(requests, 'GHSA-j8r2-6x86-q33q', ['2.31.0']),
      // Installed versions the scheme rejects cost their package only.
      finding(pkg('npm', 'left-pad', 'not.a.version'), 'GHSA-lp', ['1.3.0']),
    ],
    level: 'major',
    index: index({
      'pypi:urllib3': { versions: ['1.26.5', '1.26.17', '2.0.6'], source: 'pypi' },
      'pypi:requests': { versions: ['2.25.1', '2.31.0'], source: 'pypi' },
      'npm:left-pad': { versions: ['1.3.0'], source: 'npm' },
    }),
  });
  assert.deepEqual(plan.upgrades.map((u) => `${u.name} ${u.from}->${u.to} ${u.reasons.join(',')}`), ['requests 2.25.1->2.31.0 GHSA-j8r2-6x86-q33q', 'urllib3 1.26.5->1.26.17 GHSA-v845-jxx5-vc9f']);
  const broken = plan.skipped.find((s) => s.name === 'urllib3')!;
  assert.deepEqual([broken.version, broken.findings], ['1.26.5', ['CVE-BROKEN']]);
  assert.match(broken.reason, /fixed version "see advisory" cannot be compared as a pypi version \(invalid PEP 440 version "see advisory"\)/);
  const leftPad = plan.skipped.find((s) => s.name === 'left-pad')!;
  assert.match(leftPad.reason, /installed version "not\.a\.version" cannot be compared as a npm version/);
  // An unreadable alternative is passed over when another fixed version serves.
  assert.deepEqual(chooseFixedVersion('pypi', '1.26.5', ['garbage', '1.26.17'], 'patch'), { kind: 'chosen', version: '1.26.17' });
});

test('an index whose latest cannot be read skips only that package (certifi)', async () => {
  const plan = await planLibraryUpgrades({
    findings: [finding(pkg('pypi', 'certifi', '2022.12.7'), 'GHSA-xqr8-7jwr-rhp7', ['2023.07.22']), finding(pkg('pypi', 'idna', '3.6'), 'GHSA-jjg7-2v4v-x38h', ['3.7'])],
    level: 'minor',
    index: index({ 'pypi:certifi': { versions: ['2022.12.7'], latest: 'latest!', source: 'pypi' }, 'pypi:idna': { versions: ['3.6', '3.7'], source: 'pypi' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => `${u.name} ${u.to}`), ['idna 3.7']);
  assert.match(plan.skipped[0]!.reason, /versions cannot be compared: invalid PEP 440 version "latest!"/);
});

test('a fixed version at or below the installed one is reported as such, not as a level block', async () => {
  const combined = combineChoices('pypi', '1.26.16', [{ id: 'OLD', fixed: ['1.26.15', '1.25.0'] }], 'patch');
  assert.deepEqual(combined, { fixes: [], blocked: [], unfixable: [{ id: 'OLD', reason: 'no fixed version above the installed 1.26.16 (the advisory names 1.26.15, 1.25.0)' }] });
});

test('go.mod requirements are planned (ecosystem go, located at the module root); binaries\' modules stay reported', async () => {
  const goMod = (name: string, version: string, extra: Partial<InstalledPackage> = {}) => pkg('go', name, version, { path: 'src/app/go.mod', location: 'src/app', goOrigin: 'go.mod', goMod: { module: 'example.com/app', goVersion: '1.22', indirect: false }, ...extra });
  const plan = await planLibraryUpgrades({
    findings: [
      finding(goMod('golang.org/x/text', 'v0.3.6'), 'GO-2021-0113', ['v0.3.7']),
      finding(goMod('golang.org/x/net', 'v0.17.0', { goMod: { module: 'example.com/app', indirect: true } }), 'GO-2023-2102', ['v0.17.1']),
      finding(goMod('github.com/fork/yaml', 'v1.0.1', { goMod: { module: 'example.com/app', replaces: 'gopkg.in/yaml.v3 v3.0.0' } }), 'GO-Y', ['v1.0.2']),
      finding(pkg('go', 'golang.org/x/text', 'v0.3.6', { path: 'usr/local/bin/gotext', location: 'usr/local/bin/gotext', goOrigin: 'binary', goMainModule: true }), 'GO-2021-0113', ['v0.3.7']),
      finding(pkg('go', 'golang.org/x/text', 'v0.3.6', { path: 'usr/local/bin/hello', location: 'usr/local/bin/hello', goOrigin: 'binary' }), 'GO-2021-0113', ['v0.3.7']),
    ],
    level: 'patch',
    index: index({ 'go:golang.org/x/text': { versions: ['v0.3.6', 'v0.3.7'], source: 'goproxy' }, 'go:golang.org/x/net': { versions: ['v0.17.0', 'v0.17.1'], source: 'goproxy' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => [u.ecosystem, u.name, u.from, u.to, u.path, u.location]), [
    ['go', 'golang.org/x/net', 'v0.17.0', 'v0.17.1', 'src/app/go.mod', 'src/app'],
    ['go', 'golang.org/x/text', 'v0.3.6', 'v0.3.7', 'src/app/go.mod', 'src/app'],
  ]);
  const why = Object.fromEntries(plan.skipped.map((s) => [`${s.name} ${s.path}`, s.reason]));
  assert.match(why['github.com/fork/yaml src/app/go.mod']!, /replace directive in src\/app\/go\.mod puts this module in place of gopkg\.in\/yaml\.v3 v3\.0\.0/);
  assert.match(why['golang.org/x/text usr/local/bin/gotext']!, /built from golang\.org\/x\/text v0\.3\.6 itself \(its main module\)/);
  assert.match(why['golang.org/x/text usr/local/bin/hello']!, /compiled into usr\/local\/bin\/hello/);
});

test('the same release in two places is two upgrades (site-packages and a venv; two deps.json in one folder; report-only paths)', async () => {
  const site = 'usr/local/lib/python3.11/site-packages';
  const venv = 'opt/app/venv/lib/python3.11/site-packages';
  const plan = await planLibraryUpgrades({
    findings: [
      finding(pkg('pypi', 'urllib3', '2.0.5', { path: `${site}/urllib3-2.0.5.dist-info/METADATA`, location: site }), 'GHSA-v845-jxx5-vc9f', ['2.0.6']),
      finding(pkg('pypi', 'urllib3', '2.0.5', { path: `${venv}/urllib3-2.0.5.dist-info/METADATA`, location: venv }), 'GHSA-v845-jxx5-vc9f', ['2.0.6']),
      finding(pkg('nuget', 'Newtonsoft.Json', '12.0.1', { path: 'app/api.deps.json', location: 'app' }), 'GHSA-5crp-9r3c-p9vr', ['13.0.1']),
      finding(pkg('nuget', 'Newtonsoft.Json', '12.0.1', { path: 'app/worker.deps.json', location: 'app' }), 'GHSA-5crp-9r3c-p9vr', ['13.0.1']),
    ],
    level: 'major',
    index: index({ 'pypi:urllib3': { versions: ['2.0.5', '2.0.6'], source: 'pypi' }, 'nuget:Newtonsoft.Json': { versions: ['12.0.1', '13.0.1'], source: 'nuget' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => `${u.name} ${u.to} ${u.path}`), [
    'Newtonsoft.Json 13.0.1 app/api.deps.json',
    'Newtonsoft.Json 13.0.1 app/worker.deps.json',
    `urllib3 2.0.6 ${venv}/urllib3-2.0.5.dist-info/METADATA`,
    `urllib3 2.0.6 ${site}/urllib3-2.0.5.dist-info/METADATA`,
  ]);
  // Rows of a report with no inventory behind it: each PkgPath is its own install.
  const rows = findingsFromTrivyReport({ Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
    { VulnerabilityID: 'CVE-2023-43804', PkgName: 'urllib3', PkgPath: `${site}/urllib3-2.0.5.dist-info/METADATA`, InstalledVersion: '2.0.5', FixedVersion: '2.0.6' },
    { VulnerabilityID: 'CVE-2023-43804', PkgName: 'urllib3', PkgPath: `${venv}/urllib3-2.0.5.dist-info/METADATA`, InstalledVersion: '2.0.5', FixedVersion: '2.0.6' },
  ] }] });
  const fromReport = await planLibraryUpgrades({ findings: rows, level: 'patch', index: index({ 'pypi:urllib3': { versions: ['2.0.5', '2.0.6'], source: 'pypi' } }) });
  assert.deepEqual(fromReport.upgrades.map((u) => u.location), [venv, site]);
});

test('vendored copies (pip/_vendor, setuptools/_vendor, any metadata inside another package) are reported, never installed', async () => {
  const site = 'usr/local/lib/python3.11/site-packages';
  const plan = await planLibraryUpgrades({
    findings: [
      finding(pkg('pypi', 'wheel', '0.43.0', { path: `${site}/setuptools/_vendor/wheel-0.43.0.dist-info/METADATA`, location: site, vendoredIn: 'setuptools' }), 'GHSA-wheel', ['0.46.2']),
      // Not marked by the inventory (a report's row): the path alone says so.
      finding(pkg('pypi', 'requests', '2.28.0', { path: `${site}/pip/_vendor/requests-2.28.0.dist-info/METADATA`, location: site }), 'GHSA-j8r2-6x86-q33q', ['2.31.0']),
      finding(pkg('pypi', 'certifi', '2021.10.8', { path: `${site}/some_pkg/bundled/certifi-2021.10.8.dist-info`, location: site }), 'GHSA-xqr8-7jwr-rhp7', ['2023.07.22']),
    ],
    level: 'major',
    index: index({}),
  });
  assert.deepEqual(plan.upgrades, []);
  assert.deepEqual(plan.skipped.map((s) => `${s.name}: ${s.reason}`).sort(), [
    'certifi: vendored inside some_pkg: upgrade some_pkg',
    'requests: vendored inside pip: upgrade pip',
    'wheel: vendored inside setuptools: upgrade setuptools',
  ]);
});

test('report rows from source manifests and lockfiles are reported with why; gomod rows are planned', async () => {
  const findings = findingsFromTrivyReport({ Results: [
    { Target: 'srv/app/requirements.txt', Class: 'lang-pkgs', Type: 'pip', Vulnerabilities: [{ VulnerabilityID: 'CVE-2023-32681', PkgName: 'requests', InstalledVersion: '2.25.1', FixedVersion: '2.31.0' }] },
    { Target: 'srv/app/poetry.lock', Class: 'lang-pkgs', Type: 'poetry', Vulnerabilities: [{ VulnerabilityID: 'CVE-2023-32681', PkgName: 'requests', InstalledVersion: '2.25.1', FixedVersion: '2.31.0' }] },
    { Target: 'srv/web/package-lock.json', Class: 'lang-pkgs', Type: 'npm', Vulnerabilities: [{ VulnerabilityID: 'CVE-2021-23337', PkgName: 'lodash', InstalledVersion: '4.17.20', FixedVersion: '4.17.21' }] },
    { Target: 'srv/web/yarn.lock', Class: 'lang-pkgs', Type: 'yarn', Vulnerabilities: [{ VulnerabilityID: 'CVE-2021-44906', PkgName: 'minimist', InstalledVersion: '1.2.5', FixedVersion: '1.2.6' }] },
    // Trivy writes Go fixes without the `v` module versions carry.
    { Target: 'src/app/go.mod', Class: 'lang-pkgs', Type: 'gomod', Vulnerabilities: [{ VulnerabilityID: 'CVE-2021-38561', PkgName: 'golang.org/x/text', InstalledVersion: 'v0.3.6', FixedVersion: '0.3.7' }] },
  ] });
  const plan = await planLibraryUpgrades({
    findings, level: 'patch',
    index: index({ 'go:golang.org/x/text': { versions: ['v0.3.6', 'v0.3.7'], source: 'goproxy' }, 'pypi:requests': { versions: ['2.31.0'], source: 'pypi' }, 'npm:lodash': { versions: ['4.17.21'], source: 'npm' }, 'npm:minimist': { versions: ['1.2.6'], source: 'npm' } }),
  });
  assert.deepEqual(plan.upgrades.map((u) => [u.name, u.from, u.to, u.path, u.location]), [['golang.org/x/text', 'v0.3.6', 'v0.3.7', 'src/app/go.mod', 'src/app']]);
  assert.deepEqual(plan.skipped.map((s) => [s.name, s.path]).sort(), [['lodash', 'srv/web/package-lock.json'], ['minimist', 'srv/web/yarn.lock'], ['requests', 'srv/app/poetry.lock'], ['requests', 'srv/app/requirements.txt']]);
  for (const s of plan.skipped) assert.match(s.reason, new RegExp(`^named by ${s.path.replace(/\./g, '\\.')} \\((pip|poetry|npm|yarn)\\), a source manifest or lockfile, not an installed package`));
});

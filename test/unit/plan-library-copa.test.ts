import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LibraryIndex, PublishedVersions } from '../../src/plan/library-index.js';
import { LibraryIndexError } from '../../src/plan/library-index.js';
import { combineChoices, type LibraryPatchLevel } from '../../src/plan/library-level.js';
import { planLibraryUpgrades } from '../../src/plan/library-upgrades.js';
import { pythonPlacement } from '../../src/scan/inventory/readers/python.js';
import type { InstalledPackage } from '../../src/scan/inventory/types.js';
import { splitFixedVersions } from '../../src/scan/sources/report-findings.js';
import type { Finding } from '../../src/scan/types.js';
import type { Ecosystem } from '../../src/versions/index.js';

// Test vectors ported from Copa's own unit tests (github.com/project-copacetic/copacetic
// at b23efc6c6d00ede87c2ed9efa8f5f0a00d81d7c9): the inputs and Copa's expected answers,
// restated here as data. Where patchd answers differently on purpose, `patchd` says what
// it answers and `why` says why (README, "Library planning").

interface LevelVector {
  /** Copa's test and case name. */
  readonly source: string;
  readonly installed: string;
  /** Copa's fixedVersions: one entry per advisory, comma-separated alternatives within one. */
  readonly advisories: readonly string[];
  readonly level: LibraryPatchLevel;
  /** Copa's answer ('' = no update). */
  readonly copa: string;
  readonly patchd?: string;
  readonly why?: string;
}

const fixesEvery = 'patchd takes the smallest version within the level that fixes every advisory; Copa takes the patch release and leaves the others open';

const vectors: readonly LevelVector[] = [
  // pkg/report/trivy_test.go, TestOptimalVersionSelection (Copa's default level, patch)
  { source: 'TestOptimalVersionSelection/patch_version_preference', installed: '1.26.16', advisories: ['1.26.19', '2.0.6', '1.26.17'], level: 'patch', copa: '1.26.19' },
  { source: 'TestOptimalVersionSelection/minor_version_preference', installed: '1.25.5', advisories: ['1.26.19', '2.0.6', '1.27.1'], level: 'patch', copa: '' },
  { source: 'TestOptimalVersionSelection/major_version_when_needed', installed: '1.25.5', advisories: ['2.0.6', '2.2.2'], level: 'patch', copa: '' },
  { source: 'TestOptimalVersionSelection/comma_separated_versions', installed: '1.26.16', advisories: ['2.0.7, 1.26.18'], level: 'patch', copa: '1.26.18' },
  // pkg/report/trivy_test.go, TestOptimalVersionSelectionWithPatchLevel
  { source: 'WithPatchLevel/patch_level_only_patch_versions', installed: '1.26.16', advisories: ['1.26.17', '1.26.19'], level: 'patch', copa: '1.26.19' },
  { source: 'WithPatchLevel/patch_level_with_mixed_versions_no_fallback', installed: '1.26.16', advisories: ['1.27.1', '2.0.6'], level: 'patch', copa: '' },
  { source: 'WithPatchLevel/patch_level_comma_separated_mixed', installed: '1.26.16', advisories: ['1.26.18, 1.27.1, 2.0.6'], level: 'patch', copa: '1.26.18' },
  { source: 'WithPatchLevel/minor_level_prefers_patch', installed: '1.26.16', advisories: ['1.26.19', '1.27.1', '2.0.6'], level: 'minor', copa: '1.26.19', patchd: '1.27.1', why: fixesEvery },
  { source: 'WithPatchLevel/minor_level_uses_minor_when_no_patch', installed: '1.26.16', advisories: ['1.27.1', '2.0.6'], level: 'minor', copa: '1.27.1' },
  { source: 'WithPatchLevel/minor_level_no_major_fallback', installed: '1.26.16', advisories: ['2.0.6', '2.1.0'], level: 'minor', copa: '' },
  { source: 'WithPatchLevel/major_level_picks_highest_when_no_comma_separated', installed: '1.26.16', advisories: ['1.26.19', '1.27.1', '2.0.6'], level: 'major', copa: '2.0.6' },
  { source: 'WithPatchLevel/major_level_use_major_when_only_option', installed: '1.26.16', advisories: ['2.0.6', '2.1.0'], level: 'major', copa: '2.1.0' },
  { source: 'WithPatchLevel/major_level_comma_separated_prefers_patch', installed: '1.26.16', advisories: ['1.26.18, 2.0.6'], level: 'major', copa: '1.26.18' },
  { source: 'WithPatchLevel/major_level_picks_highest_minor_when_no_comma_separated', installed: '1.26.16', advisories: ['1.27.1', '1.28.0'], level: 'major', copa: '1.28.0' },
  { source: 'WithPatchLevel/patch_level_empty_when_no_valid_versions', installed: '1.26.16', advisories: ['1.26.15', '1.25.0'], level: 'patch', copa: '' },
  // pkg/report/trivy_test.go, TestCertifiExceptionWithMockData (the non-certifi cases; certifi is below)
  { source: 'TestCertifiExceptionWithMockData/other_package_respects_patch_level', installed: '2.25.1', advisories: ['2.25.2', '2.26.0', '3.0.0'], level: 'patch', copa: '2.25.2' },
  { source: 'TestCertifiExceptionWithMockData/other_package_respects_minor_level', installed: '2.25.1', advisories: ['2.25.2', '2.26.0', '3.0.0'], level: 'minor', copa: '2.25.2', patchd: '2.26.0', why: fixesEvery },
  { source: 'TestCertifiExceptionWithMockData/other_package_uses_minor_when_no_patch', installed: '2.25.1', advisories: ['2.26.0', '2.27.0', '3.0.0'], level: 'minor', copa: '2.27.0' },
  // pkg/report/trivy_test.go, TestPatchLevelVersionSelection
  { source: 'TestPatchLevelVersionSelection/major_patch_level_picks_highest_version', installed: '41.0.6', advisories: ['41.0.7', '42.0.0', '42.0.4', '42.0.2', '43.0.1'], level: 'major', copa: '43.0.1' },
  { source: 'TestPatchLevelVersionSelection/major_patch_level_no_patch_available', installed: '41.0.6', advisories: ['42.0.0', '42.0.4', '42.0.2', '43.0.1'], level: 'major', copa: '43.0.1' },
  { source: 'TestPatchLevelVersionSelection/patch_level_restriction_no_upgrade', installed: '41.0.6', advisories: ['42.0.0', '42.0.4', '42.0.2', '43.0.1'], level: 'patch', copa: '' },
  { source: 'TestPatchLevelVersionSelection/patch_level_picks_highest_patch', installed: '41.0.6', advisories: ['41.0.7', '41.0.8', '42.0.0', '43.0.1'], level: 'patch', copa: '41.0.8' },
  { source: 'TestPatchLevelVersionSelection/patch_level_no_major_jump', installed: '2.6.0', advisories: ['3.4.0'], level: 'patch', copa: '' },
  { source: 'TestPatchLevelVersionSelection/patch_level_with_patch_available', installed: '2.6.0', advisories: ['2.6.1', '3.4.0'], level: 'patch', copa: '2.6.1' },
  { source: 'TestPatchLevelVersionSelection/minor_level_restriction_no_major', installed: '41.0.6', advisories: ['42.0.0', '42.0.4', '42.0.2', '43.0.1'], level: 'minor', copa: '' },
  { source: 'TestPatchLevelVersionSelection/minor_level_prefers_patch', installed: '1.26.5', advisories: ['1.26.6', '1.27.0', '2.0.0'], level: 'minor', copa: '1.26.6', patchd: '1.27.0', why: fixesEvery },
  { source: 'TestPatchLevelVersionSelection/minor_level_uses_minor_when_no_patch', installed: '1.26.5', advisories: ['1.27.0', '1.28.0', '2.0.0'], level: 'minor', copa: '1.28.0' },
  { source: 'TestPatchLevelVersionSelection/major_level_allows_major_upgrade', installed: '2.6.0', advisories: ['3.4.0'], level: 'major', copa: '3.4.0' },
  { source: 'TestPatchLevelVersionSelection/comma_separated_prefers_patch_over_major', installed: '1.26.16', advisories: ['2.0.6, 1.26.17'], level: 'major', copa: '1.26.17' },
  {
    source: 'TestPatchLevelVersionSelection/comma_separated_with_patch_preference', installed: '41.0.6', advisories: ['41.0.8, 42.0.4', '43.0.1'], level: 'major', copa: '41.0.8', patchd: '43.0.1',
    why: 'at major, once any advisory lists alternatives Copa prefers the patch release and leaves the 43.0.1 advisory open; patchd fixes both',
  },
  { source: 'TestPatchLevelVersionSelection/comma_separated_multiple_entries', installed: '1.26.16', advisories: ['2.0.7, 1.26.18', '1.26.19, 2.2.2'], level: 'major', copa: '1.26.19' },
  { source: 'TestPatchLevelVersionSelection/comma_separated_no_patch_available', installed: '41.0.6', advisories: ['42.0.0, 42.0.4', '43.0.1'], level: 'major', copa: '43.0.1' },
  { source: 'TestPatchLevelVersionSelection/no_valid_versions_available', installed: '1.26.16', advisories: ['1.26.15', '1.25.0'], level: 'patch', copa: '' },
  { source: 'TestPatchLevelVersionSelection/certifi_special_handling_simulation', installed: '2021.10.8', advisories: ['2022.12.7', '2023.5.7', '2024.2.2'], level: 'major', copa: '2024.2.2' },
];

test('Copa\'s patch-level vectors (pkg/report/trivy_test.go): the same answer, or the documented departure', () => {
  for (const v of vectors) {
    const combined = combineChoices('pypi', v.installed, v.advisories.map((a, i) => ({ id: `ADV-${i}`, fixed: splitFixedVersions(a) })), v.level);
    const expected = v.patchd ?? v.copa;
    assert.equal(combined.target ?? '', expected, `${v.source}: ${v.installed} ${JSON.stringify(v.advisories)} at ${v.level}${v.why ? ` (${v.why})` : ''}`);
    // patchd never moves further than some advisory needs, and every fix it claims is in the target.
    if (combined.target) assert.ok(v.advisories.some((a) => splitFixedVersions(a).includes(combined.target!)), v.source);
  }
  // The departures, spelled out: what Copa leaves open, patchd fixes within the same level.
  const departure = combineChoices('pypi', '1.26.5', [{ id: 'A', fixed: ['1.26.6'] }, { id: 'B', fixed: ['1.27.0'] }, { id: 'C', fixed: ['2.0.0'] }], 'minor');
  assert.deepEqual(departure, { target: '1.27.0', fixes: ['A', 'B'], blocked: [{ id: 'C', needed: '2.0.0' }] });
});

// A package index with fixed answers, as in plan-library.test.ts.
function index(table: Record<string, PublishedVersions>): LibraryIndex {
  return {
    async versions(ecosystem: Ecosystem, name: string) {
      const answer = table[`${ecosystem}:${name}`];
      if (!answer) throw new LibraryIndexError('PACKAGE_NOT_FOUND', `${name}: not published there (HTTP 404)`);
      return answer;
    },
  };
}
const lib = (ecosystem: Ecosystem, name: string, version: string, path: string, extra: Partial<InstalledPackage> = {}): InstalledPackage => ({
  ecosystem, class: 'library', name, version, purl: '', path, ...extra,
});
const finding = (p: InstalledPackage, id: string, fixed: string[]): Finding => ({ package: p, id, aliases: [], fixedVersions: fixed, severity: 'HIGH', source: 'trivy' });

test('Copa\'s certifi cases (TestCertifiExceptionWithMockData): the newest release at every level', async () => {
  for (const level of ['patch', 'minor', 'major'] as const) {
    const plan = await planLibraryUpgrades({
      findings: [finding(lib('pypi', 'certifi', '2021.10.8', 'site-packages/certifi-2021.10.8.dist-info/METADATA'), 'CVE-C', ['2022.12.7', '2023.5.7', '2024.2.2'])],
      level, index: index({ 'pypi:certifi': { versions: ['2021.10.8', '2022.12.7', '2023.5.7', '2024.2.2'], latest: '2024.2.2', source: 'pypi' } }),
    });
    assert.deepEqual(plan.upgrades.map((u) => u.to), ['2024.2.2'], level);
  }
});

test('Copa\'s grouping cases (pkg/langmgr/langmgr_test.go TestGetUniqueLatestUpdates, golang_test.go TestGetUniqueLatestUpdates_Go)', async () => {
  const site = 'usr/lib/python3.12/site-packages';
  const venv = 'opt/venv/lib/python3.12/site-packages';
  const goMod = (name: string, version: string) => lib('go', name, version, 'app/go.mod', { location: 'app', goOrigin: 'go.mod' });
  const plan = await planLibraryUpgrades({
    findings: [
      // "invalid version with ignore errors": the invalid one is left out, the valid one planned (patchd needs no --ignore-errors for it).
      finding(lib('pypi', 'package1', '0.9.0', `${site}/package1-0.9.0.dist-info/METADATA`), 'CVE-P1', ['invalid']),
      finding(lib('pypi', 'package2', '0.9.0', `${site}/package2-0.9.0.dist-info/METADATA`), 'CVE-P2', ['1.0.0']),
      // "same package at different PkgPaths - kept as separate entries".
      finding(lib('pypi', 'pip', '23.0', `${site}/pip-23.0.dist-info/METADATA`, { location: site }), 'CVE-PIP', ['24.0']),
      finding(lib('pypi', 'pip', '23.0', `${venv}/pip-23.0.dist-info/METADATA`, { location: venv }), 'CVE-PIP', ['24.0']),
      // "same package at same PkgPath with different CVEs - merged to one entry with latest version".
      finding(lib('pypi', 'pip', '22.3', `srv/legacy/lib/python3.12/site-packages/pip-22.3.dist-info/METADATA`), 'CVE-A', ['23.0']),
      finding(lib('pypi', 'pip', '22.3', `srv/legacy/lib/python3.12/site-packages/pip-22.3.dist-info/METADATA`), 'CVE-B', ['24.0']),
      // Go: "invalid version with ignoreErrors=true", "single package multiple versions - selects highest", "pseudo-versions".
      finding(goMod('github.com/gin-gonic/gin', 'v1.6.3'), 'GO-G0', ['invalid']),
      finding(goMod('golang.org/x/net', 'v0.4.0'), 'GO-N', ['v0.5.0']),
      finding(goMod('github.com/gin-gonic/gin', 'v1.6.3'), 'GO-G1', ['v1.7.0']),
      finding(goMod('github.com/gin-gonic/gin', 'v1.6.3'), 'GO-G2', ['v1.7.7']),
      finding(goMod('github.com/gin-gonic/gin', 'v1.6.3'), 'GO-G3', ['v1.7.4']),
      finding(goMod('github.com/user/repo', 'v0.0.0-20221201000000-000000000000'), 'GO-R1', ['v0.0.0-20230101120000-abcdef123456']),
      finding(goMod('github.com/user/repo', 'v0.0.0-20221201000000-000000000000'), 'GO-R2', ['v0.0.0-20230102120000-ghijkl789012']),
    ],
    level: 'major',
    index: index({
      'pypi:package2': { versions: ['1.0.0'], source: 'pypi' },
      'pypi:pip': { versions: ['22.3', '23.0', '24.0'], source: 'pypi' },
      'go:golang.org/x/net': { versions: ['v0.5.0'], source: 'goproxy' },
      'go:github.com/gin-gonic/gin': { versions: ['v1.7.0', 'v1.7.4', 'v1.7.7'], source: 'goproxy' },
      'go:github.com/user/repo': { versions: ['v0.0.0-20230101120000-abcdef123456', 'v0.0.0-20230102120000-ghijkl789012'], source: 'goproxy' },
    }),
  });
  assert.deepEqual(plan.upgrades.map((u) => `${u.name} ${u.from}->${u.to} ${u.path}`), [
    'github.com/gin-gonic/gin v1.6.3->v1.7.7 app/go.mod',
    'github.com/user/repo v0.0.0-20221201000000-000000000000->v0.0.0-20230102120000-ghijkl789012 app/go.mod',
    'golang.org/x/net v0.4.0->v0.5.0 app/go.mod',
    'package2 0.9.0->1.0.0 usr/lib/python3.12/site-packages/package2-0.9.0.dist-info/METADATA',
    'pip 23.0->24.0 opt/venv/lib/python3.12/site-packages/pip-23.0.dist-info/METADATA',
    'pip 22.3->24.0 srv/legacy/lib/python3.12/site-packages/pip-22.3.dist-info/METADATA',
    'pip 23.0->24.0 usr/lib/python3.12/site-packages/pip-23.0.dist-info/METADATA',
  ]);
  assert.deepEqual(plan.skipped.map((s) => `${s.name} ${s.findings.join(',')}`).sort(), ['github.com/gin-gonic/gin GO-G0', 'package1 CVE-P1']);
  for (const s of plan.skipped) assert.match(s.reason, /fixed version "invalid" cannot be compared/, s.name);
});

test('Copa\'s vendored-package cases (pkg/langmgr/python_test.go TestIsNestedSitePackage, TestExtractVendorParent)', () => {
  const cases: [string, string | undefined][] = [
    ['', undefined],
    ['app/.venv/lib/python3.14/site-packages', undefined],
    ['app/.venv/lib/python3.14/site-packages/', undefined],
    ['app/.venv/lib/python3.14/site-packages/pip-25.3.dist-info/METADATA', undefined],
    ['usr/local/lib/python3.14/site-packages/pip-25.3.dist-info/METADATA', undefined],
    ['usr/local/lib/python3.11/site-packages/requests-2.28.0.egg-info', undefined],
    ['app/.venv/lib/python3.14/site-packages/setuptools/_vendor/wheel-0.45.1.dist-info/METADATA', 'setuptools'],
    ['app/.venv/lib/python3.12/site-packages/pip/_vendor/requests-2.28.0.dist-info/METADATA', 'pip'],
    ['usr/local/lib/python3.11/site-packages/some_pkg/bundled/certifi-2021.10.8.dist-info', 'some_pkg'],
    ['usr/lib/python3.11/dist-packages', undefined],
  ];
  for (const [path, parent] of cases) assert.equal(pythonPlacement(path)?.vendoredIn, parent, path);
  // TestExtractSitePackagesDir: a vendored copy belongs to its parent's site-packages.
  assert.equal(pythonPlacement('app/.venv/lib/python3.14/site-packages/setuptools/_vendor/wheel-0.45.1.dist-info/METADATA')?.sitePackages, 'app/.venv/lib/python3.14/site-packages');
  assert.equal(pythonPlacement('usr/local/lib/python3.11/site-packages/requests')?.sitePackages, 'usr/local/lib/python3.11/site-packages');
});

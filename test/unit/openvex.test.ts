import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PackageCandidate } from '../../src/distro/deb/repository/index.js';
import type { PatchPlan, PlannedPackage } from '../../src/plan/types.js';
import { ociPurl, openVexDocument, verifiedFixes, type VexPlatform } from '../../src/publish/openvex.js';
import type { InstalledPackage } from '../../src/scan/inventory/types.js';
import type { Finding } from '../../src/scan/types.js';

// Which findings a VEX document claims as fixed: only those the applied,
// verified plan moved at or past a fixed version; never a failed package, a
// plain "newer version" finding, or an upgrade short of the fix.

const os = { id: 'debian', versionId: '12', idLike: [] };
const deb = (name: string, version: string, source?: { name: string; version: string }): InstalledPackage => ({
  ecosystem: 'debian', class: 'os', name, version, architecture: 'amd64', path: 'var/lib/dpkg/status',
  purl: `pkg:deb/debian/${name}@${encodeURIComponent(version)}?arch=amd64&distro=debian-12`,
  ...(source ? { sourceName: source.name, sourceVersion: source.version } : {}),
});
const finding = (pkg: InstalledPackage, id: string, fixed: string[], source: Finding['source'] = 'osv'): Finding => ({ package: pkg, id, aliases: [id.replace(/^DEBIAN-/, '')], fixedVersions: fixed, severity: 'HIGH', source });
const planned = (pkg: InstalledPackage, to: string, sourceField?: string): PlannedPackage => ({
  name: pkg.name, architecture: 'amd64', from: pkg.version, to, reasons: [], executor: 'deb-inprocess',
  candidate: { paragraph: { fields: sourceField ? [['Source', sourceField]] : [] } } as unknown as PackageCandidate,
});

const libssl = deb('libssl3', '3.0.20-1~deb12u2', { name: 'openssl', version: '3.0.20-1~deb12u2' });
const expat = deb('libexpat1', '2.5.0-1+deb12u2');
const tzdata = deb('tzdata', '2026b-0+deb12u1');
const zlib = deb('zlib1g', '1:1.2.13.dfsg-1');
const urllib3: InstalledPackage = { ecosystem: 'pypi', class: 'library', name: 'urllib3', version: '1.26.5', path: 'usr/lib/python3/site-packages/urllib3-1.26.5.dist-info/METADATA', location: 'usr/lib/python3/site-packages', purl: 'pkg:pypi/urllib3@1.26.5' };

const findings = [
  finding(libssl, 'DEBIAN-CVE-2025-0001', ['3.0.22-1~deb12u2']),
  finding(libssl, 'DEBIAN-CVE-2025-0002', ['3.0.99-1']), // the upgrade falls short of this one
  finding(expat, 'DEBIAN-CVE-2025-0003', ['2.5.0-1+deb12u3']), // expat fails to install below
  finding(tzdata, 'UPDATE-AVAILABLE', ['2026c-0+deb12u1'], 'repository'),
  finding(zlib, 'DEBIAN-CVE-2025-0004', []), // no fix known
  finding(urllib3, 'GHSA-aaaa-bbbb-cccc', ['1.26.17', '2.0.6']),
];
const plan: PatchPlan = {
  packages: [planned(libssl, '3.0.22-1~deb12u2+b1', 'openssl (3.0.22-1~deb12u2)'), planned(expat, '2.5.0-1+deb12u3'), planned(tzdata, '2026c-0+deb12u1'), planned(zlib, '1:1.2.13.dfsg-1+deb12u1')],
  heldBack: [], unavailable: [],
  libraries: [{ ecosystem: 'pypi', name: 'urllib3', from: '1.26.5', to: '1.26.19', path: urllib3.path, location: 'usr/lib/python3/site-packages', reasons: ['GHSA-aaaa-bbbb-cccc'], executor: 'buildkit' }],
};
const platform = (over: Partial<VexPlatform> = {}): VexPlatform => ({
  platform: 'linux/amd64', findings, plan, failed: [{ name: 'libexpat1' }], layer: {}, manifestDigest: `sha256:${'a'.repeat(64)}`, inventory: { os }, ...over,
});

test('verifiedFixes: applied upgrades at or past the fixed version, judged by source version for Debian', () => {
  const fixes = verifiedFixes(platform());
  assert.deepEqual(fixes.map((f) => `${f.id} ${f.package.name} ${f.version}`), [
    'DEBIAN-CVE-2025-0001 libssl3 3.0.22-1~deb12u2+b1',
    'GHSA-aaaa-bbbb-cccc urllib3 1.26.19',
  ], 'short of the fix, failed, no fix known and plain updates are left out');
  assert.equal(fixes[0]!.purl, 'pkg:deb/debian/libssl3@3.0.22-1~deb12u2%2Bb1?arch=amd64&distro=debian-12', 'the purl at the patched version');
  assert.equal(fixes[1]!.purl, 'pkg:pypi/urllib3@1.26.19', 'library purl at the patched version');
});

test('verifiedFixes: nothing without a built and verified layer, or a plan', () => {
  const { layer: _layer, ...unbuilt } = platform();
  assert.deepEqual(verifiedFixes(unbuilt), [], 'no layer: nothing was verified');
  assert.deepEqual(verifiedFixes(platform({ plan: undefined as unknown as PatchPlan })), [], 'no plan');
  assert.deepEqual(verifiedFixes(platform({ failed: [{ name: 'libexpat1' }, { name: 'libssl3' }, { name: 'urllib3 (pypi, usr/lib/python3/site-packages)' }] })), [], 'failed installs fix nothing');
});

test('openVexDocument: one fixed statement per vulnerability, products per patched platform manifest', () => {
  const arm = `sha256:${'b'.repeat(64)}`;
  const doc = openVexDocument(
    { target: 'r.example/app:main-patched', digest: `sha256:${'c'.repeat(64)}`, platforms: [platform(), platform({ platform: 'linux/arm64/v8', manifestDigest: arm }), platform({ platform: 'linux/s390x', manifestDigest: undefined })] },
    { repository: { registry: 'r.example', repository: 'team/app' }, now: new Date('2026-11-28T10:00:00Z') },
  );
  assert.equal(doc['@context'], 'https://openvex.dev/ns/v0.2.0', 'context');
  assert.equal(doc.timestamp, '2026-11-28T10:00:00.000Z', 'timestamp');
  assert.deepEqual([doc.author, doc.version], ['patchd', 1], 'author and version');
  assert.deepEqual(doc.statements.map((s) => [s.vulnerability.name, s.status]), [['DEBIAN-CVE-2025-0001', 'fixed'], ['GHSA-aaaa-bbbb-cccc', 'fixed']], 'statements');
  assert.deepEqual(doc.statements[0]!.vulnerability.aliases, ['CVE-2025-0001'], 'aliases');
  assert.deepEqual(doc.statements[0]!.products.map((p) => p['@id']), [
    `pkg:oci/app@sha256%3A${'a'.repeat(64)}?arch=amd64&repository_url=r.example%2Fteam%2Fapp`,
    `pkg:oci/app@sha256%3A${'b'.repeat(64)}?arch=arm64&repository_url=r.example%2Fteam%2Fapp`,
  ], 'one product per pushed platform manifest; the unpushed platform has none');
  assert.deepEqual(doc.statements[0]!.products[0]!.subcomponents, [{ '@id': 'pkg:deb/debian/libssl3@3.0.22-1~deb12u2%2Bb1?arch=amd64&distro=debian-12' }], 'subcomponents');
  const again = openVexDocument({ digest: `sha256:${'c'.repeat(64)}`, platforms: [] }, { repository: { registry: 'r.example', repository: 'team/app' }, now: new Date('2026-11-28T10:00:00Z') });
  assert.equal(again['@id'], doc['@id'], 'the same result and time give the same @id');
  assert.deepEqual(again.statements, [], 'nothing fixed, no statements');
});

test('ociPurl: a single-platform image has no arch qualifier', () => {
  assert.equal(ociPurl({ registry: '127.0.0.1:5000', repository: 'fixtures/bookworm' }, `sha256:${'d'.repeat(64)}`, 'single'), `pkg:oci/bookworm@sha256%3A${'d'.repeat(64)}?repository_url=127.0.0.1%3A5000%2Ffixtures%2Fbookworm`, 'purl');
});

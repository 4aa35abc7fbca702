import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { matchOsv } from '../../src/scan/match.js';
import { collectFindings, scanLayers } from '../../src/scan/scan.js';
import { OsvDatabase } from '../../src/scan/sources/osv.js';
import { findingsFromHarborReport } from '../../src/scan/sources/harbor.js';
import { findingsFromTrivyReport } from '../../src/scan/sources/trivy.js';
import type { Finding } from '../../src/scan/types.js';
import { appLayersDir, bookwormRootfsTar } from '../harness/fixture-image.js';
import { entriesFromDir, layerFromEntries, layerFromTarFile } from '../harness/layers.js';
import { run, tmpDir } from '../harness/tools.js';

const osvDir = new URL('../../fixtures/osv/', import.meta.url).pathname;
const summary = (findings: readonly Finding[], name: string, version?: string) => findings
  .filter((f) => f.package.name === name && (version === undefined || f.package.version === version))
  .map((f) => `${f.id} ${f.fixedVersions.join(',')}`).sort();

test('bookworm + Debian OSV records: exactly the findings `dpkg --compare-versions` says, per binary package', async () => {
  const { inventory } = await scanLayers([layerFromTarFile(await bookwormRootfsTar())]);
  const db = await OsvDatabase.load([join(osvDir, 'Debian')]);
  const findings = matchOsv(inventory.packages, inventory.os, db);
  // Independent oracle: every (record, installed binary of its source package) pair, judged by dpkg itself.
  const expected: string[] = [];
  for (const file of await readdir(join(osvDir, 'Debian'))) {
    const rec = JSON.parse(await readFile(join(osvDir, 'Debian', file), 'utf8')) as { id: string; affected: { package: { name: string }; ranges: { events: { fixed?: string }[] }[] }[] };
    const source = rec.affected[0]!.package.name;
    const fixed = rec.affected[0]!.ranges[0]!.events.find((e) => e.fixed)!.fixed!;
    for (const pkg of inventory.packages.filter((p) => p.sourceName === source)) {
      const lt = await run('dpkg', ['--compare-versions', pkg.sourceVersion!, 'lt', fixed]).then(() => true, () => false);
      if (lt) expected.push(`${pkg.name} ${rec.id}`);
    }
  }
  assert.deepEqual(findings.map((f) => `${f.package.name} ${f.id}`).sort(), expected.sort());
  // The facts the issue asks for: libssl3 and openssl are affected by the 3.0.22 fixes, not by those their own version carries.
  const libssl = summary(findings, 'libssl3');
  assert.equal(libssl.length, 12);
  assert.deepEqual(summary(findings, 'openssl'), libssl);
  assert.ok(libssl.includes('DEBIAN-CVE-2026-84782 3.0.22-1~deb12u2'));
  assert.ok(libssl.includes('DEBIAN-CVE-2026-63072 3.0.22-1~deb12u1'));
  assert.ok(!libssl.some((l) => l.startsWith('DEBIAN-CVE-2026-7383 ')), 'fixed in the installed 3.0.20-1~deb12u2');
  assert.equal(summary(findings, 'libexpat1').length, 27);
  assert.equal(summary(findings, 'perl-base').length, 13);
  const one = findings.find((f) => f.id === 'DEBIAN-CVE-2026-84782' && f.package.name === 'libssl3')!;
  assert.deepEqual([one.aliases, one.severity, one.source], [['CVE-2026-84782'], 'HIGH', 'osv']);
});

test('Python, Node, Go and .NET findings for deliberately old versions match their real advisories', async () => {
  const dir = await appLayersDir();
  const dotnet = await layerFromEntries(await entriesFromDir(new URL('../../fixtures/inventory/dotnet', import.meta.url).pathname));
  const { inventory } = await scanLayers([join(dir, 'python.tar'), join(dir, 'node.tar'), join(dir, 'go.tar')].map(layerFromTarFile).concat(dotnet));
  const findings = matchOsv(inventory.packages, inventory.os, await OsvDatabase.load([osvDir]));
  assert.deepEqual(summary(findings, 'urllib3', '1.26.5'), ['GHSA-34jh-p97f-mpxf 1.26.19,2.2.2', 'GHSA-g4mx-q9vg-27p4 1.26.18,2.0.7', 'GHSA-v845-jxx5-vc9f 1.26.17,2.0.6']);
  assert.deepEqual(summary(findings, 'urllib3', '2.0.5'), ['GHSA-34jh-p97f-mpxf 2.2.2', 'GHSA-g4mx-q9vg-27p4 2.0.7', 'GHSA-v845-jxx5-vc9f 2.0.6']);
  assert.deepEqual(summary(findings, 'requests'), ['GHSA-9wx4-h78v-vm56 2.32.0', 'GHSA-j8r2-6x86-q33q 2.31.0']);
  assert.deepEqual(summary(findings, 'certifi'), ['GHSA-xqr8-7jwr-rhp7 2023.07.22']);
  assert.deepEqual(summary(findings, 'minimist'), ['GHSA-vh95-rmgr-6w4m 0.2.1,1.2.3', 'GHSA-xvch-5gv4-984h 0.2.4,1.2.6']);
  assert.deepEqual(summary(findings, 'lodash'), ['GHSA-35jh-r3h4-6jhm 4.17.21']);
  assert.deepEqual(summary(findings, 'golang.org/x/text'), ['GO-2021-0113 v0.3.7', 'GO-2022-1059 v0.3.8']);
  assert.deepEqual(summary(findings, 'Newtonsoft.Json'), ['GHSA-5crp-9r3c-p9vr 13.0.1']);
  // Nothing matches what no advisory names (idna, chardet, typescript, npm's bundled packages).
  assert.deepEqual([...new Set(findings.map((f) => f.package.name))].sort(), ['Newtonsoft.Json', 'certifi', 'golang.org/x/text', 'lodash', 'minimist', 'requests', 'urllib3']);
  assert.equal(findings.find((f) => f.id === 'GHSA-xvch-5gv4-984h')!.severity, 'CRITICAL');
});

test('OSV all.zip archives load like directories', async () => {
  const work = await tmpDir('patchd-osv-zip');
  try {
    await run('sh', ['-c', `cd '${join(osvDir, 'PyPI')}' && zip -q -X '${join(work.path, 'all.zip')}' *.json`]);
    const fromZip = await OsvDatabase.load([join(work.path, 'all.zip')]);
    const fromDir = await OsvDatabase.load([join(osvDir, 'PyPI')]);
    assert.equal(fromZip.recordCount, 6);
    assert.deepEqual(fromZip.lookup('PyPI', 'URLLIB3'), fromDir.lookup('PyPI', 'urllib3'));
    await run('sh', ['-c', `head -c 100 '${join(work.path, 'all.zip')}' > '${join(work.path, 'broken.zip')}'`]);
    await assert.rejects(OsvDatabase.load([join(work.path, 'broken.zip')]), /broken\.zip: not a zip file/);
    await assert.rejects(OsvDatabase.load([join(work.path, 'missing')]), /advisory path .*missing: does not exist/);
  } finally {
    await work.remove();
  }
});

test('a Trivy report and a Harbor report become findings tied to the inventory', async () => {
  const dir = await appLayersDir();
  const { inventory } = await scanLayers([layerFromTarFile(await bookwormRootfsTar()), layerFromTarFile(join(dir, 'python.tar'))]);
  const trivy = findingsFromTrivyReport({
    SchemaVersion: 2,
    Results: [
      { Target: 'x (debian 12.12)', Class: 'os-pkgs', Type: 'debian', Vulnerabilities: [{ VulnerabilityID: 'CVE-2026-84782', PkgName: 'libssl3', InstalledVersion: '3.0.20-1~deb12u2', FixedVersion: '3.0.22-1~deb12u2', Severity: 'HIGH' }] },
      { Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
        { VulnerabilityID: 'CVE-2023-43804', PkgName: 'urllib3', PkgPath: 'opt/app/venv/lib/python3.11/site-packages/urllib3-2.0.5.dist-info/METADATA', InstalledVersion: '2.0.5', FixedVersion: '2.0.6, 1.26.17', Severity: 'MEDIUM' },
        { VulnerabilityID: 'CVE-2099-0001', PkgName: 'not-installed', InstalledVersion: '1.0', FixedVersion: '1.1' },
      ] },
    ],
  }, inventory);
  assert.deepEqual(trivy.map((f) => [f.package.name, f.package.path, f.fixedVersions]), [
    ['libssl3', 'var/lib/dpkg/status', ['3.0.22-1~deb12u2']],
    ['urllib3', 'opt/app/venv/lib/python3.11/site-packages/urllib3-2.0.5.dist-info/METADATA', ['2.0.6', '1.26.17']],
    ['not-installed', '', ['1.1']],
  ]);
  const harbor = findingsFromHarborReport({
    'application/vnd.security.vulnerability.report; version=1.1': {
      generated_at: '2026-11-24T06:00:00Z', scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.0' }, severity: 'High',
      vulnerabilities: [
        { id: 'CVE-2023-45803', package: 'urllib3', version: '1.26.5', fix_version: '1.26.18', severity: 'Medium', description: 'request body not stripped\nmore', links: [] },
        { id: 'CVE-2026-84782', package: 'openssl', version: '3.0.20-1~deb12u2', fix_version: '3.0.22-1~deb12u2', severity: 'High', links: [] },
      ],
    },
  }, inventory);
  assert.deepEqual(harbor.map((f) => [f.package.ecosystem, f.package.name, f.package.version, f.severity, f.source]), [
    ['pypi', 'urllib3', '1.26.5', 'MEDIUM', 'harbor'],
    ['debian', 'openssl', '3.0.20-1~deb12u2', 'HIGH', 'harbor'],
  ]);
  assert.throws(() => findingsFromHarborReport({ 'text/plain': {} }), /none of the known report types/);
  assert.deepEqual(collectFindings(inventory, { report: { kind: 'harbor', json: { 'application/vnd.security.vulnerability.report; version=1.1': { vulnerabilities: [] } } } }), []);
});

test('a `go install`ed binary\'s main module gets its own Go findings, the same two its release gets as another binary\'s dependency', async () => {
  const dir = await appLayersDir();
  const { inventory } = await scanLayers([layerFromTarFile(join(dir, 'gotext.tar')), layerFromTarFile(join(dir, 'go.tar'))]);
  const findings = matchOsv(inventory.packages, inventory.os, await OsvDatabase.load([join(osvDir, 'Go')]));
  const text = (path: string) => findings.filter((f) => f.package.name === 'golang.org/x/text' && f.package.path === path).map((f) => `${f.id} ${f.fixedVersions.join(',')}`).sort();
  assert.deepEqual(text('usr/local/bin/gotext'), ['GO-2021-0113 v0.3.7', 'GO-2022-1059 v0.3.8']);
  assert.deepEqual(text('usr/local/bin/hello'), ['GO-2021-0113 v0.3.7', 'GO-2022-1059 v0.3.8']);
  assert.ok(findings.filter((f) => f.package.path === 'usr/local/bin/gotext').every((f) => f.package.goMainModule === true), 'the gotext findings are the main module\'s');
});

test('rpm: a source package keeps its binary\'s epoch, so openssl-libs at the fixed 1:3.0.7-27.el9 is not reported (rpmbuild + rpm --root)', async () => {
  const work = await tmpDir('patchd-rpm-epoch');
  try {
    // openssl-libs is a subpackage of the `openssl` source with Epoch 1, as on RHEL 9 and its rebuilds.
    const inventories = [];
    for (const release of ['25.el9', '27.el9']) {
      const top = join(work.path, `build-${release}`);
      const root = join(work.path, `root-${release}`);
      await run('sh', ['-c', `mkdir -p '${top}/SPECS' '${root}/etc' && cat > '${top}/SPECS/openssl.spec' <<'SPEC'
Name: openssl
Epoch: 1
Version: 3.0.7
Release: ${release}
License: Apache-2.0
Summary: patchd fixture: a source package whose binaries are named otherwise
BuildArch: noarch
%description
Fixture.
%package libs
Summary: patchd fixture libraries
%description libs
Fixture.
%install
mkdir -p %{buildroot}/usr/share/openssl-libs
echo ${release} > %{buildroot}/usr/share/openssl-libs/VERSION
%files libs
/usr/share/openssl-libs/VERSION
SPEC
rpmbuild --quiet --define "_topdir ${top}" -bb '${top}/SPECS/openssl.spec' >&2
printf 'NAME="AlmaLinux"\\nID="almalinux"\\nID_LIKE="rhel centos fedora"\\nVERSION_ID="9.4"\\n' > '${root}/etc/os-release'
rpm --root '${root}' --dbpath /var/lib/rpm --define '_db_backend sqlite' --initdb
rpm --root '${root}' --dbpath /var/lib/rpm --define '_db_backend sqlite' -i --nodeps --ignorearch --noscripts '${top}'/RPMS/noarch/openssl-libs-*.rpm`]);
      // The reference: rpm's own view of the installed header.
      const q = (await run('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', '-q', '--qf', '%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{SOURCERPM}', 'openssl-libs'])).stdout;
      assert.equal(q, `openssl-libs 1:3.0.7-${release} openssl-3.0.7-${release}.src.rpm`);
      const { inventory } = await scanLayers([await layerFromEntries(await entriesFromDir(root))]);
      inventories.push(inventory);
    }
    const [older, fixed] = inventories;
    const libs = fixed!.packages.find((p) => p.name === 'openssl-libs')!;
    assert.deepEqual([libs.version, libs.sourceName, libs.sourceVersion, libs.purl], ['1:3.0.7-27.el9', 'openssl', '1:3.0.7-27.el9', 'pkg:rpm/almalinux/openssl-libs@3.0.7-27.el9?arch=noarch&distro=almalinux-9.4&epoch=1']);
    // An advisory as AlmaLinux files them: under the source name, the fix with its epoch.
    const db = new OsvDatabase();
    db.add({ id: 'ALSA-FIXTURE-OPENSSL', summary: 'openssl update', affected: [{ package: { ecosystem: 'AlmaLinux:9', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:3.0.7-27.el9' }] }] }] }, 'inline');
    assert.deepEqual(matchOsv(fixed!.packages, fixed!.os, db), []);
    assert.deepEqual(matchOsv(older!.packages, older!.os, db).map((f) => `${f.package.name} ${f.package.sourceVersion} ${f.id} ${f.fixedVersions.join(',')}`), ['openssl-libs 1:3.0.7-25.el9 ALSA-FIXTURE-OPENSSL 1:3.0.7-27.el9']);
  } finally {
    await work.remove();
  }
});

test('Python metadata of a distribution package (python3-requests\' egg-info in dist-packages) is matched through its OS package, not PyPI', async () => {
  const meta = (version: string) => `Metadata-Version: 1.2\nName: requests\nVersion: ${version}\n\nbody\n`;
  const { inventory } = await scanLayers([await layerFromEntries([
    { path: 'etc/os-release', content: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' },
    { path: 'var/lib/dpkg/status', content: 'Package: python3-requests\nStatus: install ok installed\nArchitecture: all\nSource: requests\nVersion: 2.28.1+dfsg-1\nDescription: elegant and simple HTTP library for Python3\n' },
    { path: 'var/lib/dpkg/info/python3-requests.list', content: '/usr/lib/python3/dist-packages/requests-2.28.1.egg-info\n/usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO\n' },
    { path: 'usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO', content: meta('2.28.1') },
    // The same release installed by pip is PyPI's, and matched as such.
    { path: 'usr/local/lib/python3.11/dist-packages/requests-2.28.1.dist-info/METADATA', content: meta('2.28.1') },
  ])]);
  const findings = matchOsv(inventory.packages, inventory.os, await OsvDatabase.load([join(osvDir, 'PyPI')]));
  assert.deepEqual(findings.map((f) => `${f.package.location} ${f.id}`).sort(), [
    'usr/local/lib/python3.11/dist-packages GHSA-9wx4-h78v-vm56',
    'usr/local/lib/python3.11/dist-packages GHSA-j8r2-6x86-q33q',
  ]);
  assert.equal(inventory.packages.find((p) => p.location === 'usr/lib/python3/dist-packages')?.distroOwned, true);
});

test('Trivy rows are tied by kind and place: gobinary to the binary (main module included, fixes given their `v`), gomod to the go.mod, a named path to that copy only', async () => {
  const dir = await appLayersDir();
  const site = 'usr/local/lib/python3.11/site-packages';
  const meta = (name: string, version: string) => `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n\nbody\n`;
  const { inventory } = await scanLayers([
    layerFromTarFile(join(dir, 'gotext.tar')),
    await layerFromEntries([
      ...await entriesFromDir(new URL('../../fixtures/inventory/gomod', import.meta.url).pathname),
      { path: `${site}/wheel-0.43.0.dist-info/METADATA`, content: meta('wheel', '0.43.0') },
      { path: `${site}/setuptools/_vendor/wheel-0.43.0.dist-info/METADATA`, content: meta('wheel', '0.43.0') },
    ]),
  ]);
  const findings = findingsFromTrivyReport({ Results: [
    { Target: 'usr/local/bin/gotext', Class: 'lang-pkgs', Type: 'gobinary', Vulnerabilities: [{ VulnerabilityID: 'CVE-2021-38561', PkgName: 'golang.org/x/text', InstalledVersion: 'v0.3.6', FixedVersion: '0.3.7' }] },
    { Target: 'srv/app/go.mod', Class: 'lang-pkgs', Type: 'gomod', Vulnerabilities: [{ VulnerabilityID: 'CVE-2021-38561', PkgName: 'golang.org/x/text', InstalledVersion: 'v0.3.6', FixedVersion: '0.3.7' }] },
    { Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [{ VulnerabilityID: 'CVE-2026-24049', PkgName: 'wheel', PkgPath: `${site}/setuptools/_vendor/wheel-0.43.0.dist-info/METADATA`, InstalledVersion: '0.43.0', FixedVersion: '0.46.2' }] },
    { Target: 'srv/app/requirements.txt', Class: 'lang-pkgs', Type: 'pip', Vulnerabilities: [{ VulnerabilityID: 'CVE-2026-24049', PkgName: 'wheel', InstalledVersion: '0.43.0', FixedVersion: '0.46.2' }] },
  ] }, inventory);
  assert.deepEqual(findings.map((f) => [f.package.path, f.package.goOrigin ?? '-', f.package.goMainModule ?? false, f.package.vendoredIn ?? '-', f.package.sourceManifest?.type ?? '-', f.fixedVersions.join(',')]), [
    ['usr/local/bin/gotext', 'binary', true, '-', '-', 'v0.3.7'],
    ['srv/app/go.mod', 'go.mod', false, '-', '-', 'v0.3.7'],
    [`${site}/setuptools/_vendor/wheel-0.43.0.dist-info/METADATA`, '-', false, 'setuptools', '-', '0.46.2'],
    ['srv/app/requirements.txt', '-', false, '-', 'pip', '0.46.2'],
  ]);
});

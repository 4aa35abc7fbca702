import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { formatParagraph, parseParagraphs, parseRelations } from '../../src/distro/deb/control.js';
import { readDebArchive } from '../../src/distro/deb/deb-archive.js';
import { parseDeb822Sources, parseOneLineSources } from '../../src/distro/deb/repository/sources.js';
import { forEachEntry } from '../../src/image/filesystem.js';
import { findingsFromTrivyReport } from '../../src/scan/sources/trivy.js';
import { debUpgradeRequest } from '../../src/plan/os-request.js';
import { run, tmpDir } from '../harness/tools.js';

const work = await tmpDir('patchd-deb-formats');
after(() => work.remove());

test('this machine\'s dpkg status file round-trips byte for byte', async () => {
  const text = await readFile('/var/lib/dpkg/status', 'utf8');
  const paragraphs = parseParagraphs(text);
  assert.ok(paragraphs.length > 50);
  assert.equal(paragraphs.map((p) => `${formatParagraph(p)}\n`).join(''), text);
});

test('relations: alternatives, versions, arch qualifiers and restrictions', () => {
  assert.deepEqual(parseRelations('libc6 (>= 2.34), gpgv | gpgv2, foo:any, bar [amd64] <!nocheck>, baz (<< 1.0~)'), [
    [{ name: 'libc6', op: '>=', version: '2.34' }],
    [{ name: 'gpgv' }, { name: 'gpgv2' }],
    [{ name: 'foo', arch: 'any' }],
    [{ name: 'bar' }],
    [{ name: 'baz', op: '<<', version: '1.0~' }],
  ]);
});

test('apt sources: one-line with options, deb822 with several URIs and suites, disabled and deb-src entries', () => {
  const one = parseOneLineSources([
    '# comment',
    'deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://deb.debian.org/debian/ bookworm main contrib',
    'deb-src http://deb.debian.org/debian bookworm main',
    'deb http://security.debian.org/debian-security bookworm-security main # trailing',
  ].join('\n'), '/etc/apt/sources.list');
  assert.deepEqual(one.map((s) => [s.uri, s.suite, s.components.join(','), s.signedBy?.join(',') ?? '', s.architectures?.join(',') ?? '']), [
    ['http://deb.debian.org/debian', 'bookworm', 'main,contrib', '/usr/share/keyrings/k.gpg', 'amd64'],
    ['http://security.debian.org/debian-security', 'bookworm-security', 'main', '', ''],
  ]);
  const deb822 = parseDeb822Sources([
    '# a comment', 'Types: deb deb-src', 'URIs: http://a/debian http://b/debian', 'Suites: bookworm bookworm-updates', 'Components: main',
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', '', 'Types: deb', 'Enabled: no', 'URIs: http://c/', 'Suites: x', 'Components: main', '',
  ].join('\n'), '/etc/apt/sources.list.d/debian.sources');
  assert.deepEqual(deb822.map((s) => `${s.uri} ${s.suite}`), ['http://a/debian bookworm', 'http://a/debian bookworm-updates', 'http://b/debian bookworm', 'http://b/debian bookworm-updates']);
});

for (const compression of ['xz', 'gzip', 'none']) {
  test(`reads a .deb built by dpkg-deb with ${compression} members`, async () => {
    const root = join(work.path, `pkg-${compression}`);
    await mkdir(join(root, 'DEBIAN'), { recursive: true });
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await writeFile(join(root, 'DEBIAN/control'), 'Package: demo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.com>\nDescription: demo\n');
    await writeFile(join(root, 'DEBIAN/postinst'), '#!/bin/sh\nset -e\nexit 0\n');
    await chmod(join(root, 'DEBIAN/postinst'), 0o755);
    await writeFile(join(root, 'usr/bin/demo'), 'echo demo\n');
    const deb = join(work.path, `demo-${compression}.deb`);
    await run('dpkg-deb', ['--root-owner-group', `-Z${compression}`, '--build', root, deb]);
    const names: string[] = [];
    const control = await readDebArchive(createReadStream(deb), (data) => forEachEntry(data, async (header, body) => {
      names.push(header.name);
      body.resume();
      await new Promise((r) => body.on('end', r));
    }));
    assert.match(control.get('control')!.content.toString(), /^Package: demo$/m);
    assert.equal(control.get('postinst')!.mode, 0o755);
    assert.ok(names.includes('./usr/bin/demo'), `entries: ${names.join(' ')}`);
  });
}

test('a file that is not a .deb is refused clearly', async () => {
  const bogus = join(work.path, 'bogus.deb');
  await writeFile(bogus, 'not an archive');
  await assert.rejects(readDebArchive(createReadStream(bogus), async () => {}), /missing ar magic/);
});

test('Trivy reports: OS packages with a FixedVersion, highest fix per package', () => {
  const findings = findingsFromTrivyReport({
    SchemaVersion: 2,
    Results: [
      { Target: 'img (debian 12.5)', Class: 'os-pkgs', Type: 'debian', Vulnerabilities: [
        { VulnerabilityID: 'CVE-A', PkgName: 'libssl3', InstalledVersion: '3.0.11-1~deb12u2', FixedVersion: '3.0.13-1~deb12u1' },
        { VulnerabilityID: 'CVE-B', PkgName: 'libssl3', InstalledVersion: '3.0.11-1~deb12u2', FixedVersion: '3.0.14-1~deb12u1' },
        { VulnerabilityID: 'CVE-C', PkgName: 'zlib1g', InstalledVersion: '1:1.2.13.dfsg-1' },
      ] },
      { Target: 'app/requirements.txt', Class: 'lang-pkgs', Type: 'pip', Vulnerabilities: [{ VulnerabilityID: 'CVE-D', PkgName: 'urllib3', FixedVersion: '2.2.2' }] },
    ],
  });
  assert.deepEqual(findings.map((f) => [f.package.ecosystem, f.package.name, f.id, f.fixedVersions]), [
    ['debian', 'libssl3', 'CVE-A', ['3.0.13-1~deb12u1']], ['debian', 'libssl3', 'CVE-B', ['3.0.14-1~deb12u1']], ['debian', 'zlib1g', 'CVE-C', []], ['pypi', 'urllib3', 'CVE-D', ['2.2.2']],
  ]);
  const request = debUpgradeRequest(findings);
  assert.equal(request.kind, 'packages');
  assert.deepEqual([...(request.kind === 'packages' ? request.packages : [])], [['libssl3', { fixedVersion: '3.0.14-1~deb12u1', reasons: ['CVE-A', 'CVE-B'] }]]);
  assert.throws(() => findingsFromTrivyReport({ Results: 'nope' }), /not a Trivy JSON report/);
});

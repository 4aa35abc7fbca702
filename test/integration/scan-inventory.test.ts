import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseParagraphs, field, formatParagraph } from '../../src/distro/deb/control.js';
import { scanLayers } from '../../src/scan/scan.js';
import type { Inventory } from '../../src/scan/inventory/types.js';
import { appLayersDir, bookwormRootfsTar } from '../harness/fixture-image.js';
import { entriesFromDir, layerFromEntries, layerFromTarFile } from '../harness/layers.js';
import { run } from '../harness/tools.js';

const fixtures = new URL('../../fixtures/inventory/', import.meta.url).pathname;
const inventoryOf = async (...layers: Parameters<typeof scanLayers>[0]) => (await scanLayers(layers)).inventory;
const pick = (inv: Inventory, ecosystem: string) => inv.packages.filter((p) => p.ecosystem === ecosystem).map((p) => `${p.name}@${p.version}`).sort();

test('bookworm (dpkg): every package dpkg-query lists, with source packages, os-release and purls', async () => {
  const rootfs = await bookwormRootfsTar();
  const inv = await inventoryOf(layerFromTarFile(rootfs));
  assert.equal(inv.os?.id, 'debian');
  assert.equal(inv.os?.versionId, '12');
  // The reference: the real dpkg-query over the same database, not our parser.
  const listed = await run('sh', ['-c', `d=$(mktemp -d) && tar -xf '${rootfs}' -C $d ./var/lib/dpkg/status && dpkg-query --admindir=$d/var/lib/dpkg -W -f '\${db:Status-Status} \${Package}@\${Version}\\n' && rm -rf $d`]);
  const expected = listed.stdout.trim().split('\n').filter((l) => l.startsWith('installed ')).map((l) => l.slice('installed '.length)).sort();
  assert.ok(expected.length > 80, `${expected.length} packages`);
  assert.deepEqual(pick(inv, 'debian'), expected);
  const libssl = inv.packages.find((p) => p.name === 'libssl3')!;
  assert.equal(libssl.sourceName, 'openssl');
  assert.equal(libssl.class, 'os');
  assert.match(libssl.purl, /^pkg:deb\/debian\/libssl3@3\.0\.\d+-1~deb12u\d+\?arch=amd64&distro=debian-12$/);
  assert.equal(inv.packages.find((p) => p.name === 'libc6')!.sourceName, 'glibc');
  assert.deepEqual(inv.warnings, []);
});

test('distroless-style status.d/ (one stanza per file, no Status field), generated from the bookworm status', async () => {
  const status = (await run('tar', ['-xOf', await bookwormRootfsTar(), './var/lib/dpkg/status'])).stdout;
  const stanzas = parseParagraphs(status).filter((p) => field(p, 'Status') === 'install ok installed');
  const entries = stanzas.map((p) => ({
    path: `var/lib/dpkg/status.d/${field(p, 'Package')}`,
    content: formatParagraph({ fields: p.fields.filter(([n]) => n !== 'Status' && n !== 'Conffiles') }),
  }));
  entries.push({ path: 'var/lib/dpkg/status.d/libssl3.md5sums', content: 'd41d8cd98f00b204e9800998ecf8427e  usr/lib/x86_64-linux-gnu/libssl.so.3\n' });
  entries.push({ path: 'etc/os-release', content: 'PRETTY_NAME="Distroless"\nID=debian\nVERSION_ID="12"\n' });
  const inv = await inventoryOf(await layerFromEntries(entries, 'distroless'));
  assert.equal(pick(inv, 'debian').length, stanzas.length);
  assert.equal(inv.packages.find((p) => p.name === 'libssl3')?.path, 'var/lib/dpkg/status.d/libssl3');
});

test('Python: pip site-packages, a venv and a distribution egg-info, from PyPI', async () => {
  const dir = await appLayersDir();
  const inv = await inventoryOf(layerFromTarFile(await bookwormRootfsTar()), layerFromTarFile(join(dir, 'python.tar')));
  assert.deepEqual(pick(inv, 'pypi'), ['certifi@2022.12.7', 'chardet@4.0.0', 'idna@2.10', 'requests@2.25.1', 'six@1.16.0', 'urllib3@1.26.5', 'urllib3@2.0.5']);
  const venv = inv.packages.find((p) => p.name === 'urllib3' && p.version === '2.0.5')!;
  assert.equal(venv.location, 'opt/app/venv/lib/python3.11/site-packages');
  assert.equal(venv.purl, 'pkg:pypi/urllib3@2.0.5');
  assert.equal(inv.packages.find((p) => p.name === 'six')!.location, 'usr/lib/python3/dist-packages');
});

test('Node: an app\'s direct and transitive dependencies, and global packages, from the npm registry', async () => {
  const inv = await inventoryOf(layerFromTarFile(join(await appLayersDir(), 'node.tar')));
  const at = (name: string, location: string) => inv.packages.find((p) => p.ecosystem === 'npm' && p.name === name && p.location === location);
  assert.deepEqual({ v: at('lodash', 'srv/app')?.version, direct: at('lodash', 'srv/app')?.direct }, { v: '4.17.20', direct: true });
  assert.deepEqual({ v: at('minimist', 'srv/app')?.version, direct: at('minimist', 'srv/app')?.direct }, { v: '0.0.8', direct: false });
  for (const [name, version] of [['typescript', '4.9.5'], ['npm', '9.6.7'], ['corepack', '0.17.0']] as const) {
    const g = at(name, 'usr/local/lib');
    assert.equal(g?.version, version, name);
    assert.equal(g?.global, true, name);
  }
  // npm's bundled dependencies are inventoried too, and are not global installs.
  const bundled = inv.packages.filter((p) => p.location === 'usr/local/lib/node_modules/npm');
  assert.ok(bundled.length > 50, `${bundled.length} bundled packages`);
  assert.ok(bundled.every((p) => !p.global));
});

test('Go: build info read from a real `go build` binary (module deps, Go version, vcs.revision)', async () => {
  const dir = await appLayersDir();
  const inv = await inventoryOf(layerFromTarFile(join(dir, 'go.tar')));
  const text = inv.packages.find((p) => p.name === 'golang.org/x/text')!;
  assert.equal(text.version, 'v0.3.6');
  assert.equal(text.path, 'usr/local/bin/hello');
  assert.equal(text.purl, 'pkg:golang/golang.org/x/text@v0.3.6');
  assert.equal(text.goBinary?.mainModule, 'example.com/patchd-fixture/hello');
  // The reference: `go version -m` on the same binary.
  const binary = join(dir, 'unpacked-hello');
  await run('sh', ['-c', `tar -xOf '${join(dir, 'go.tar')}' ./usr/local/bin/hello > '${binary}'`]);
  const m = (await run('go', ['version', '-m', binary])).stdout;
  assert.equal(text.goBinary?.goVersion, /: (go\S+)/.exec(m)![1]);
  assert.equal(text.goBinary?.vcsRevision, /vcs\.revision=(\S+)/.exec(m)![1]);
  assert.equal(inv.packages.find((p) => p.name === 'stdlib')?.version, `v${/: go(\S+)/.exec(m)![1]}`);
});

test('rpm: the sqlite database Debian\'s rpm wrote, and the same headers in a Berkeley DB Packages file', async () => {
  const dir = await appLayersDir();
  const expected = (await run('sh', ['-c', `d=$(mktemp -d) && tar -xf '${join(dir, 'rpm.tar')}' -C $d && rpm --root $d --dbpath /var/lib/rpm -qa --qf '%{NAME}@%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\\n' && rm -rf $d`])).stdout.trim().split('\n').sort();
  assert.deepEqual(expected, ['patchd-hello@1.0-1', 'patchd-lib@2:2.3.1-4']);
  const sqlite = await inventoryOf(layerFromTarFile(join(dir, 'rpm.tar')));
  assert.deepEqual(pick(sqlite, 'rpm'), expected);
  assert.equal(sqlite.packages.find((p) => p.name === 'patchd-lib')?.sourceName, 'patchd-lib');
  const bdb = await inventoryOf(layerFromTarFile(join(dir, 'rpm-bdb.tar')));
  assert.deepEqual(pick(bdb, 'rpm'), expected);
});

test('Alpine and .NET, from fixtures written to their documented formats', async () => {
  const inv = await inventoryOf(await layerFromEntries([...await entriesFromDir(join(fixtures, 'alpine')), ...await entriesFromDir(join(fixtures, 'dotnet'))]));
  assert.equal(inv.os?.id, 'alpine');
  assert.deepEqual(pick(inv, 'alpine'), ['busybox@1.36.1-r15', 'libcrypto3@3.1.4-r1', 'libssl3@3.1.4-r1', 'musl@1.2.4_git20230717-r4']);
  assert.equal(inv.packages.find((p) => p.name === 'libssl3')?.sourceName, 'openssl');
  assert.match(inv.packages.find((p) => p.name === 'libssl3')!.purl, /^pkg:apk\/alpine\/libssl3@3\.1\.4-r1\?arch=x86_64&distro=alpine-3\.19\.0$/);
  assert.deepEqual(pick(inv, 'nuget'), ['Microsoft.Build.Framework@17.3.2', 'Microsoft.NETCore.App.Runtime.linux-x64@8.0.0', 'Newtonsoft.Json@12.0.1', 'System.Text.Encodings.Web@4.7.1']);
});

test('later layers win: a whiteout removes a package, an overwrite replaces it, an opaque dir hides the lower one', async () => {
  const dir = await appLayersDir();
  const site = 'usr/local/lib/python3.11/site-packages';
  const meta = (v: string) => `Metadata-Version: 2.1\nName: urllib3\nVersion: ${v}\n\nbody\n`;
  const upper = await layerFromEntries([
    { path: `${site}/.wh.requests-2.25.1.dist-info`, content: '' },
    { path: `${site}/urllib3-1.26.5.dist-info/METADATA`, content: meta('1.26.99') },
    { path: 'opt/app/venv/lib/python3.11/site-packages/.wh..wh..opq', content: '' },
  ]);
  const inv = await inventoryOf(layerFromTarFile(join(dir, 'python.tar')), upper);
  assert.deepEqual(pick(inv, 'pypi'), ['certifi@2022.12.7', 'chardet@4.0.0', 'idna@2.10', 'six@1.16.0', 'urllib3@1.26.99']);
});

test('malformed records are warnings, never failures; oversized ones are not read', async () => {
  const inv = await inventoryOf(await layerFromEntries([
    { path: 'app/node_modules/bad/package.json', content: '{ not json' },
    { path: 'app/broken.deps.json', content: '{"libraries": ' },
    { path: 'var/lib/rpm/rpmdb.sqlite', content: 'not a database' },
    { path: 'usr/local/bin/tool', content: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(8192)]), mode: 0o755 },
    { path: 'usr/lib/python3.11/site-packages/x-1.0.dist-info/METADATA', content: 'Name: x\n' },
  ]));
  assert.deepEqual(inv.packages, []);
  assert.equal(inv.warnings.length, 2, inv.warnings.join('\n'));
  assert.match(inv.warnings.join('\n'), /app\/broken\.deps\.json: not valid JSON/);
  assert.match(inv.warnings.join('\n'), /var\/lib\/rpm\/rpmdb\.sqlite: /);
});

test('a real rpmdb read does not leave its spool behind', async () => {
  const before = (await run('sh', ['-c', 'ls /tmp | grep -c patchd-rpmdb- || true'])).stdout.trim();
  await inventoryOf(layerFromTarFile(join(await appLayersDir(), 'rpm.tar')));
  assert.equal((await run('sh', ['-c', 'ls /tmp | grep -c patchd-rpmdb- || true'])).stdout.trim(), before);
});

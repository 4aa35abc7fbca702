import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseParagraphs, field, formatParagraph } from '../../src/distro/deb/control.js';
import { scanLayers } from '../../src/scan/scan.js';
import type { Inventory } from '../../src/scan/inventory/types.js';
import { appLayersDir, bookwormRootfsTar } from '../harness/fixture-image.js';
import { entriesFromDir, layerFromEntries, layerFromTarFile } from '../harness/layers.js';
import { run, tmpDir } from '../harness/tools.js';

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

test('Go: the main module of a `go install`ed binary is a package of its own, flagged, as `go version -m` names it', async () => {
  const dir = await appLayersDir();
  const inv = await inventoryOf(layerFromTarFile(join(dir, 'gotext.tar')));
  const work = await tmpDir('patchd-gotext');
  try {
    const binary = join(work.path, 'gotext');
    await run('sh', ['-c', `tar -xOf '${join(dir, 'gotext.tar')}' ./usr/local/bin/gotext > '${binary}'`]);
    const m = (await run('go', ['version', '-m', binary])).stdout;
    const main = /\n\s*mod\t(\S+)\t(\S+)/.exec(m)!;
    assert.deepEqual([main[1], main[2]], ['golang.org/x/text', 'v0.3.6']);
    const flagged = inv.packages.filter((p) => p.goMainModule);
    assert.deepEqual(flagged.map((p) => [p.name, p.version, p.path, p.goOrigin, p.purl]), [[main[1], main[2], 'usr/local/bin/gotext', 'binary', 'pkg:golang/golang.org/x/text@v0.3.6']]);
    // Its dependencies (and the standard library) are packages as before, not flagged.
    const deps = [...m.matchAll(/\n\s*dep\t(\S+)\t(\S+)/g)].map((d) => `${d[1]}@${d[2]}`);
    assert.deepEqual(inv.packages.filter((p) => !p.goMainModule && p.name !== 'stdlib').map((p) => `${p.name}@${p.version}`), deps);
  } finally {
    await work.remove();
  }
  // A `go build` in a checkout stamps the main module from VCS (Go 1.24+): hello's is a pseudo-version, and a package too.
  const hello = await inventoryOf(layerFromTarFile(join(dir, 'go.tar')));
  assert.match(hello.packages.find((p) => p.goMainModule)?.version ?? '', /^v0\.0\.0-\d{14}-[0-9a-f]{12}/);
});

test('go.mod: requirements (`// indirect` kept) with replace honoured, as `go mod edit -json` reads the same file; module cache, vendor/ and GOROOT left out', async () => {
  const goroot = (await run('go', ['env', 'GOROOT'])).stdout.trim();
  const inv = await inventoryOf(await layerFromEntries([
    ...await entriesFromDir(join(fixtures, 'gomod')),
    { path: 'go/pkg/mod/golang.org/x/text@v0.3.6/go.mod', content: 'module golang.org/x/text\n\nrequire golang.org/x/tools v0.0.0-20180917221912-90fa682c2a6e\n' },
    { path: 'srv/app/vendor/golang.org/x/net/go.mod', content: 'module golang.org/x/net\n\nrequire golang.org/x/text v0.3.0\n' },
    { path: 'usr/local/go/src/go.mod', content: await readFile(join(goroot, 'src/go.mod')) },
  ]));
  // The reference: the Go toolchain's own reading of the file.
  type ModJson = { Module: { Path: string }; Go: string; Require: { Path: string; Version: string; Indirect?: boolean }[]; Replace: { Old: { Path: string; Version?: string }; New: { Path: string; Version?: string } }[] };
  const json = JSON.parse((await run('go', ['mod', 'edit', '-json', join(fixtures, 'gomod/srv/app/go.mod')])).stdout) as ModJson;
  const expected = json.Require.flatMap((r) => {
    const replace = json.Replace.find((x) => x.Old.Path === r.Path && (x.Old.Version === undefined || x.Old.Version === r.Version));
    if (replace && !replace.New.Version) return []; // a directory: local source, not a module version
    return [`${replace ? replace.New.Path : r.Path}@${replace ? replace.New.Version : r.Version} indirect=${r.Indirect === true}${replace ? ` replaces ${r.Path} ${r.Version}` : ''}`];
  });
  const mods = inv.packages.filter((p) => p.goOrigin === 'go.mod');
  assert.deepEqual(mods.map((p) => `${p.name}@${p.version} indirect=${p.goMod?.indirect}${p.goMod?.replaces ? ` replaces ${p.goMod.replaces}` : ''}`).sort(), expected.sort());
  assert.equal(expected.length, 5);
  for (const p of mods) {
    assert.deepEqual([p.ecosystem, p.class, p.path, p.location, p.goMod?.module, p.goMod?.goVersion], ['go', 'library', 'srv/app/go.mod', 'srv/app', json.Module.Path, json.Go], p.name);
    assert.ok(!p.goBinary, `${p.name} is not from a binary`);
  }
  assert.equal(mods.find((p) => p.name === 'golang.org/x/text')?.purl, 'pkg:golang/golang.org/x/text@v0.3.6');
  assert.deepEqual(inv.packages.filter((p) => p.goOrigin !== 'go.mod'), []);
  assert.deepEqual(inv.warnings, []);
});

test('Python: copies vendored inside another package are inventoried and say which; the system Python\'s dist-packages are distro-owned', async () => {
  const site = 'usr/local/lib/python3.12/site-packages';
  const meta = (name: string, version: string) => `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n\nbody\n`;
  const inv = await inventoryOf(await layerFromEntries([
    { path: `${site}/setuptools-75.1.0.dist-info/METADATA`, content: meta('setuptools', '75.1.0') },
    { path: `${site}/setuptools/_vendor/wheel-0.43.0.dist-info/METADATA`, content: meta('wheel', '0.43.0') },
    { path: `${site}/setuptools/_vendor/jaraco.text-3.12.1.dist-info/METADATA`, content: meta('jaraco.text', '3.12.1') },
    { path: 'usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO', content: meta('requests', '2.28.1') },
    // pip run as root on Debian (--break-system-packages) writes here: not the distribution's.
    { path: 'usr/local/lib/python3.11/dist-packages/requests-2.31.0.dist-info/METADATA', content: meta('requests', '2.31.0') },
  ]));
  const facts = inv.packages.map((p) => `${p.name}@${p.version} location=${p.location} vendoredIn=${p.vendoredIn ?? '-'} distroOwned=${p.distroOwned ?? false}`);
  assert.deepEqual(facts.sort(), [
    `setuptools@75.1.0 location=${site} vendoredIn=- distroOwned=false`,
    `jaraco-text@3.12.1 location=${site} vendoredIn=setuptools distroOwned=false`,
    `wheel@0.43.0 location=${site} vendoredIn=setuptools distroOwned=false`,
    'requests@2.28.1 location=usr/lib/python3/dist-packages vendoredIn=- distroOwned=true',
    'requests@2.31.0 location=usr/local/lib/python3.11/dist-packages vendoredIn=- distroOwned=false',
  ].sort());
  // The fixture's distribution-style egg-info (six's, in usr/lib/python3/dist-packages) is distro-owned too.
  const python = await inventoryOf(layerFromTarFile(join(await appLayersDir(), 'python.tar')));
  assert.deepEqual(python.packages.filter((p) => p.distroOwned).map((p) => p.name), ['six']);
});

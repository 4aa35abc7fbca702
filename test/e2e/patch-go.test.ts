import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { appLayersDir, bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// Go modules patched for real: an image (the bookworm fixture plus a layer of
// Go content made from the real module proxy) with go.mod files requiring
// golang.org/x/text v0.3.6 (GO-2021-0113, GO-2022-1059), one with a vendor/
// tree, a binary `go install`ed from a released module (goi18n v2.1.2, on
// x/text v0.3.3) and one built from a git checkout; `patchd patch` through a
// real buildkitd with a Go tooling image made here (the bookworm fixture plus
// this machine's Go toolchain), against the real Go module proxy.

const repoRoot = new URL('../..', import.meta.url).pathname;
const osv = join(repoRoot, 'fixtures/osv');
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let work: string;
let image: string;
let tooling: string;
let appTar: string;

const fixture = async (script: string) => (await run('bash', [join(repoRoot, 'test/fixtures', script)], { cwd: repoRoot })).stdout.trim().split('\n').at(-1)!;

before(async () => {
  [registry, buildkitd] = await Promise.all([startRegistry(), startBuildkitd()]);
  work = await mkdtemp(join(tmpdir(), 'patchd-go-e2e-'));
  const [rootfs, goTooling, apps] = await Promise.all([bookwormRootfsTar(), fixture('build-go-tooling-image.sh'), appLayersDir()]);
  appTar = await fixture('build-go-app.sh');
  await pushRootfsImage({ tarPath: rootfs, extraLayers: [appTar, join(apps, 'go.tar')], registryHost: registry.host, repository: 'fixtures/go-app', tag: 'v1' });
  // The tooling trusts what this machine trusts (a TLS-inspecting egress proxy's CA, where there is one), as a tooling image would be set up for its network.
  const ca = join(work, 'ca');
  await mkdir(join(ca, 'etc/ssl/certs'), { recursive: true });
  await writeFile(join(ca, 'etc/ssl/certs/ca-certificates.crt'), await readFile(process.env['SSL_CERT_FILE'] ?? '/etc/ssl/certs/ca-certificates.crt'));
  await run('tar', ['--owner=0', '--group=0', '-C', ca, '-cf', `${ca}.tar`, 'etc']);
  await pushRootfsImage({ tarPath: rootfs, extraLayers: [goTooling, `${ca}.tar`], registryHost: registry.host, repository: 'tooling/go', tag: 'local' });
  image = `${registry.host}/fixtures/go-app:v1`;
  tooling = `${registry.host}/tooling/go:local`;
});

after(async () => {
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

const patchd = (args: string[]) => run('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--advisories', osv, '--cache-dir', join(work, 'cache'), ...args], {
  cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '', DOCKER_CONFIG: join(work, 'no-docker') }, allowFailure: true,
});

async function unpack(ref: string, name: string): Promise<string> {
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(work, `${name}-layout`)}:x`]);
  await run('umoci', ['unpack', '--image', `${join(work, `${name}-layout`)}:x`, join(work, name)]);
  return join(work, name, 'rootfs');
}

/** goi18n's usage, and a merge that parses a language tag from a file name (golang.org/x/text/language at work). */
async function exercise(binary: string, dir: string): Promise<{ help: string; helpCode: number; merged: string }> {
  await mkdir(join(dir, 'out'), { recursive: true });
  await writeFile(join(dir, 'active.en.toml'), '[Hello]\nother = "Hello"\n');
  await writeFile(join(dir, 'translate.fr-CA.toml'), '');
  const help = await run(binary, ['--help'], { allowFailure: true });
  await run(binary, ['merge', '-sourceLanguage', 'en', '-outdir', 'out', 'active.en.toml', 'translate.fr-CA.toml'], { cwd: dir });
  return { help: help.stdout + help.stderr, helpCode: help.code, merged: await readFile(join(dir, 'out', 'translate.fr-CA.toml'), 'utf8') };
}

test('go.mod requirements and a released binary fixed in one BuildKit layer; a binary from a checkout is skipped, saying why', { timeout: 30 * 60_000 }, async () => {
  const dry = await patchd(['--pkg-types', 'os,library', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^golang\.org\/x\/text \(go, app\) v0\.3\.6 -> v0\.3\.8 {2}\(GO-2021-0113, GO-2022-1059\)$/m);
  assert.match(dry.stdout, /^golang\.org\/x\/text \(go, opt\/vendored\) v0\.3\.6 -> v0\.3\.8 /m);
  assert.match(dry.stdout, /^golang\.org\/x\/text \(go, usr\/local\/bin\/goi18n\) v0\.3\.3 -> v0\.3\.8 /m);
  assert.match(dry.stdout, /^not patched: golang\.org\/x\/text v0\.3\.6 \(go\): compiled into usr\/local\/bin\/hello, which cannot be rebuilt from a released module version: it was built from example\.com\/patchd-fixture\/hello v0\.0\.0-\S+\+dirty, a VCS checkout at revision [0-9a-f]{40} with local changes/m);

  // Without a Go tooling image the Go fixes cannot run, and the failure says what to configure.
  const noTooling = await patchd(['--pkg-types', 'library', '--buildkit-addr', buildkitd.address, '-t', 'no-tooling']);
  assert.equal(noTooling.code, 1);
  assert.match(noTooling.stderr, /Go tooling image.*--go-tooling-image/);

  const started = Date.now();
  const patch = await patchd(['--pkg-types', 'os,library', '--buildkit-addr', buildkitd.address, '--go-tooling-image', tooling]);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(patch.code, 0, `${patch.stdout}\n${patch.stderr}`);
  process.stdout.write(`# one Go patch (OS packages in-process, 2 go.mod roots and 1 binary rebuild through BuildKit): ${seconds.toFixed(1)} s\n`);
  assert.match(patch.stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);
  assert.doesNotMatch(patch.stdout, /^failed:/m);

  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}-patched`])).stdout) as { layers: unknown[] };
  const original = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}`])).stdout) as { layers: unknown[] };
  assert.equal(manifest.layers.length, original.layers.length + 1, 'exactly one layer added');
  assert.deepEqual(manifest.layers.slice(0, -1), original.layers, 'the original layers are kept as they were');

  const before = await unpack(image, 'before');
  const after = await unpack(`${image}-patched`, 'after');
  // go.mod files: the fixed requirement, its go.sum lines, the vendor/ tree brought along; nothing else moved.
  const goMod = await readFile(join(after, 'app/go.mod'), 'utf8');
  assert.match(goMod, /^require golang\.org\/x\/text v0\.3\.8$/m);
  assert.match(goMod, /^go 1\.21$/m, 'the go line is kept');
  const goSum = await readFile(join(after, 'app/go.sum'), 'utf8');
  assert.match(goSum, /^golang\.org\/x\/text v0\.3\.8 h1:nAL\+RVCQ9uMn3vJZbV\+MRnydTJFPf8qqY42YiA6MrqY=$/m);
  assert.match(goSum, /^golang\.org\/x\/text v0\.3\.8\/go\.mod h1:E6s5w1FMmriuDzIBO73fBruAKo1PCIq6d2Q6DHfQ8WQ=$/m);
  assert.match(await readFile(join(after, 'opt/vendored/go.mod'), 'utf8'), /^require golang\.org\/x\/text v0\.3\.8$/m);
  assert.match(await readFile(join(after, 'opt/vendored/vendor/modules.txt'), 'utf8'), /^# golang\.org\/x\/text v0\.3\.8$/m);
  assert.equal(await readFile(join(after, 'app/main.go'), 'utf8'), await readFile(join(before, 'app/main.go'), 'utf8'));

  // The rebuilt binary: same path, mode and owner; the fixed dependency in its build info, everything else as recorded.
  const binary = 'usr/local/bin/goi18n';
  const [was, now] = await Promise.all([stat(join(before, binary)), stat(join(after, binary))]);
  assert.deepEqual([now.mode & 0o7777, now.uid, now.gid], [0o750, 1000, 1000]);
  assert.deepEqual([was.mode & 0o7777, was.uid, was.gid], [0o750, 1000, 1000]);
  const info = (await run('go', ['version', '-m', join(after, binary)])).stdout;
  const oldInfo = (await run('go', ['version', '-m', join(before, binary)])).stdout;
  assert.match(info, /^\tdep\tgolang\.org\/x\/text\tv0\.3\.8\th1:nAL\+RVCQ9uMn3vJZbV\+MRnydTJFPf8qqY42YiA6MrqY=$/m);
  assert.match(oldInfo, /^\tdep\tgolang\.org\/x\/text\tv0\.3\.3\t/m);
  const lines = (text: string, prefix: RegExp) => text.split('\n').filter((l) => prefix.test(l)).join('\n');
  const firstLine = (text: string) => text.split('\n')[0]!.replace(/^[^:]*: /, '');
  assert.equal(firstLine(info), firstLine(oldInfo), 'the same Go release');
  assert.equal(lines(info, /^\tpath\t/), lines(oldInfo, /^\tpath\t/));
  assert.equal(lines(info, /^\tbuild\t/), lines(oldInfo, /^\tbuild\t/), 'the same recorded build settings');
  assert.equal(lines(info, /^\tdep\t(?!golang\.org\/x\/text)/), lines(oldInfo, /^\tdep\t(?!golang\.org\/x\/text)/), 'no other dependency moved');
  const [oldRun, newRun] = await Promise.all([exercise(join(before, binary), join(work, 'run-before')), exercise(join(after, binary), join(work, 'run-after'))]);
  assert.deepEqual(newRun, oldRun, 'the rebuilt binary behaves as before');
  assert.equal(oldRun.helpCode, 2);

  // The binary from a checkout is left as it was.
  assert.deepEqual(await readFile(join(after, 'usr/local/bin/hello')), await readFile(join(before, 'usr/local/bin/hello')));
});

test('--toolchain-patch-level: a binary built with Go 1.22.5 is rebuilt with the newest 1.22 release the module proxy serves', { timeout: 30 * 60_000 }, async () => {
  const oldGo = await fixture('build-go-toolchain-app.sh');
  await pushRootfsImage({ tarPath: await bookwormRootfsTar(), extraLayers: [oldGo], registryHost: registry.host, repository: 'fixtures/go-old-toolchain', tag: 'v1' });
  const target = `${registry.host}/fixtures/go-old-toolchain:v1`;
  // GO-2024-3107 (CVE-2024-34158), stack exhaustion in go/build/constraint.Parse: fixed in Go 1.22.7 and 1.23.1.
  const stdlibAdvisories = join(work, 'osv-stdlib');
  await mkdir(join(stdlibAdvisories, 'Go'), { recursive: true });
  await writeFile(join(stdlibAdvisories, 'Go', 'GO-2024-3107.json'), JSON.stringify({
    schema_version: '1.6.0', id: 'GO-2024-3107', modified: '2024-09-06T18:14:17Z', published: '2024-09-06T18:14:17Z', aliases: ['CVE-2024-34158'],
    summary: 'Stack exhaustion in Parse in go/build/constraint',
    details: 'Calling Parse on a "// +build" build tag line with deeply nested expressions can cause a panic due to stack exhaustion.',
    affected: [{ package: { ecosystem: 'Go', name: 'stdlib' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '1.22.7' }, { introduced: '1.23.0-0' }, { fixed: '1.23.1' }] }] }],
  }));
  const patch = (args: string[]) => run('npx', ['--no-install', 'patchd', 'patch', '-i', target, '--advisories', osv, '--advisories', stdlibAdvisories, '--cache-dir', join(work, 'cache'), '--pkg-types', 'library', ...args], {
    cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '', DOCKER_CONFIG: join(work, 'no-docker') }, allowFailure: true,
  });

  const without = await patch(['--dry-run']);
  assert.equal(without.code, 0, without.stderr);
  assert.match(without.stdout, /^not patched: stdlib v1\.22\.5 \(go\): .*--toolchain-patch-level/m);
  assert.match(without.stdout, /^golang\.org\/x\/text \(go, usr\/local\/bin\/goi18n\) v0\.3\.3 -> v0\.3\.8 /m);

  const started = Date.now();
  const patched = await patch(['--toolchain-patch-level', '--buildkit-addr', buildkitd.address, '--go-tooling-image', tooling]);
  process.stdout.write(`# one Go rebuild with a toolchain switch (go1.22.5 -> go1.22.12 fetched from the proxy): ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  assert.equal(patched.code, 0, `${patched.stdout}\n${patched.stderr}`);
  assert.match(patched.stdout, /^stdlib \(go, usr\/local\/bin\/goi18n\) v1\.22\.5 -> v1\.22\.12 {2}\(GO-2024-3107\)$/m);
  const after = await unpack(`${target}-patched`, 'toolchain-after');
  const info = (await run('go', ['version', '-m', join(after, 'usr/local/bin/goi18n')])).stdout;
  assert.match(info, /^\S+: go1\.22\.12$/m);
  assert.match(info, /^\tdep\tgolang\.org\/x\/text\tv0\.3\.8\t/m);
  const ran = await exercise(join(after, 'usr/local/bin/goi18n'), join(work, 'run-toolchain'));
  assert.equal(ran.helpCode, 2);
  assert.match(ran.merged, /^other = "Hello"$/m);
});

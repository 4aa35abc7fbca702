import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// RPM through BuildKit with real tools: packages from rpmbuild, a repository
// from createrepo_c served on loopback, a root populated by Debian's
// `dnf --installroot`, and a dnf tooling image built from Debian packages.
// `rpm --root` on the unpacked result is the judge.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let repoServer: Server;
let work: string;
let world: string;
let target: string;
let tooling: string;

function serveDirectory(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!path.startsWith(dir)) { res.writeHead(403).end(); return; }
    stat(path).then((s) => {
      if (!s.isFile()) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-length': s.size });
      createReadStream(path).pipe(res);
    }, () => res.writeHead(404).end());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  world = (await run('bash', [join(repoRoot, 'test/fixtures/build-rpm-world.sh')])).stdout.trim().split('\n').at(-1)!;
  [registry, buildkitd, repoServer] = await Promise.all([startRegistry(), startBuildkitd(), serveDirectory(join(world, 'repo'))]);
  work = await mkdtemp(join(tmpdir(), 'patchd-rpm-e2e-'));
  // The target's repository configuration points at the loopback server (its port is this run's).
  await mkdir(join(work, 'repofile/etc/yum.repos.d'), { recursive: true });
  await writeFile(join(work, 'repofile/etc/yum.repos.d/patchd.repo'), `[patchd]\nname=patchd test repository\nbaseurl=http://127.0.0.1:${(repoServer.address() as AddressInfo).port}/\ngpgcheck=0\nenabled=1\n`);
  await run('tar', ['--numeric-owner', '-C', join(work, 'repofile'), '-cf', join(work, 'repofile.tar'), '.']);
  await pushRootfsImage({ tarPath: join(world, 'target.tar'), extraLayers: [join(work, 'repofile.tar')], registryHost: registry.host, repository: 'fixtures/rpm-target', tag: 'v1' });
  await pushRootfsImage({ tarPath: join(world, 'tooling.tar'), registryHost: registry.host, repository: 'tooling/dnf', tag: 'bookworm' });
  target = `${registry.host}/fixtures/rpm-target:v1`;
  tooling = `${registry.host}/tooling/dnf:bookworm`;
});

after(async () => {
  repoServer?.close();
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

test('an rpm root without a package manager is upgraded by the dnf tooling image; rpm --root shows the new version', { timeout: 20 * 60_000 }, async () => {
  const patch = await run('npx', ['--no-install', 'patchd', 'patch', '-i', target, '--buildkit-addr', buildkitd.address, '--tooling-image', tooling, '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(patch.stdout, /^patchd-hello 1\.0-1 -> 1\.1-1 {2}\(upgraded through BuildKit\)$/m);
  assert.doesNotMatch(patch.stdout, /^patchd-lib /m);
  assert.match(patch.stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);

  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${target}-patched`, `oci:${join(work, 'layout')}:patched`]);
  await run('umoci', ['unpack', '--image', `${join(work, 'layout')}:patched`, join(work, 'bundle')]);
  const rootfs = join(work, 'bundle', 'rootfs');
  const q = await run('rpm', ['--root', rootfs, '--dbpath', '/var/lib/rpm', '-q', 'patchd-hello', 'patchd-lib']);
  assert.deepEqual(q.stdout.trim().split('\n'), ['patchd-hello-1.1-1.noarch', 'patchd-lib-2.3.1-4.noarch']);
  assert.equal((await run('cat', [join(rootfs, 'usr/share/patchd-hello/VERSION')])).stdout.trim(), '1.1-1');
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${target}-patched`])).stdout) as { layers: unknown[] };
  assert.equal(manifest.layers.length, 3, 'the two original layers and one patch layer');
  // Nothing of the tooling image or dnf's metadata cache leaks into the patch.
  const files = (await run('sh', ['-c', `cd '${rootfs}' && find . -path ./proc -prune -o -print | sort`])).stdout;
  assert.doesNotMatch(files, /\/usr\/bin\/dnf|var\/cache\/patchd-dnf|python3/);
});

test('rpm images are refused in-process, with the reason', async () => {
  const result = await run('npx', ['--no-install', 'patchd', 'patch', '-i', target, '--executor', 'inprocess', '--cache-dir', join(work, 'cache')], { cwd: repoRoot, allowFailure: true });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /RPM packages are installed by their package manager in the BuildKit executor, not in-process \[EXECUTOR_UNAVAILABLE\]/);
  const none = await run('npx', ['--no-install', 'patchd', 'patch', '-i', target, '--cache-dir', join(work, 'cache')], { cwd: repoRoot, allowFailure: true, env: { ...process.env, PATCHD_BUILDKIT_ADDR: '', BUILDKIT_HOST: '' } });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no BuildKit daemon is configured/);
});

test('an image that carries dnf is upgraded by its own dnf (refresh, then upgrade, inside it)', { timeout: 20 * 60_000 }, async () => {
  // The tooling root with the rpm target's files and database on top: dnf is in the image itself
  // (its dpkg database whited out, so the image is rpm-managed only).
  await mkdir(join(work, 'macros/root'), { recursive: true });
  await mkdir(join(work, 'macros/var/lib'), { recursive: true });
  await writeFile(join(work, 'macros/root/.rpmmacros'), '%_dbpath /var/lib/rpm\n');
  await writeFile(join(work, 'macros/var/lib/.wh.dpkg'), '');
  await run('tar', ['--numeric-owner', '-C', join(work, 'macros'), '-cf', join(work, 'macros.tar'), '.']);
  await pushRootfsImage({ tarPath: join(world, 'tooling.tar'), extraLayers: [join(world, 'target.tar'), join(work, 'repofile.tar'), join(work, 'macros.tar')], registryHost: registry.host, repository: 'fixtures/rpm-with-dnf', tag: 'v1' });
  const image = `${registry.host}/fixtures/rpm-with-dnf:v1`;
  const patch = await run('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--buildkit-addr', buildkitd.address, '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  assert.match(patch.stdout, /^patchd-hello 1\.0-1 -> 1\.1-1 {2}\(upgraded through BuildKit\)$/m);
  const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${image}-patched`])).stdout) as { history: { created_by?: string }[] };
  assert.match(config.history.at(-1)!.created_by ?? '', /^patchd \(buildkit, dnf\): patchd-hello 1\.0-1 -> 1\.1-1$/);
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${join(work, 'layout2')}:patched`]);
  await run('umoci', ['unpack', '--image', `${join(work, 'layout2')}:patched`, join(work, 'bundle2')]);
  const q = await run('rpm', ['--root', join(work, 'bundle2', 'rootfs'), '--dbpath', '/var/lib/rpm', '-q', 'patchd-hello']);
  assert.equal(q.stdout.trim(), 'patchd-hello-1.1-1.noarch');
});

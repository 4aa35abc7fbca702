import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// rpm repositories through a mirror, with real dnf in BuildKit: the image's
// repo file names a host that does not exist; `--rpm-mirror` maps it to a
// loopback server holding the repository (createrepo_c's, from the rpm world
// fixture). dnf gets the mirror for its runs only: the patched image's repo
// file is the original, byte for byte, and the mirror saw dnf's requests.

const repoRoot = new URL('../..', import.meta.url).pathname;
const unreachable = 'http://rpm.upstream.invalid/world';
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let mirror: Server;
let work: string;
let world: string;
const requested: string[] = [];
const repoFile = `[patchd]\nname=patchd test repository\nbaseurl=${unreachable}/os/\ngpgcheck=0\nenabled=1\n`;

function serveDirectory(dir: string, prefix: string): Promise<Server> {
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requested.push(pathname);
    if (!pathname.startsWith(prefix)) { res.writeHead(404).end(); return; }
    const path = normalize(join(dir, pathname.slice(prefix.length)));
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
  [registry, buildkitd, mirror] = await Promise.all([startRegistry(), startBuildkitd(), serveDirectory(join(world, 'repo'), '/mirror/world/os/')]);
  work = await mkdtemp(join(tmpdir(), 'patchd-rpm-mirror-'));
  await mkdir(join(work, 'repofile/etc/yum.repos.d'), { recursive: true });
  await writeFile(join(work, 'repofile/etc/yum.repos.d/patchd.repo'), repoFile);
  await run('tar', ['--numeric-owner', '-C', join(work, 'repofile'), '-cf', join(work, 'repofile.tar'), '.']);
  await pushRootfsImage({ tarPath: join(world, 'target.tar'), extraLayers: [join(work, 'repofile.tar')], registryHost: registry.host, repository: 'fixtures/rpm-target', tag: 'v1' });
  await pushRootfsImage({ tarPath: join(world, 'tooling.tar'), registryHost: registry.host, repository: 'tooling/dnf', tag: 'bookworm' });
});

after(async () => {
  mirror?.close();
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

test('the dnf tooling image upgrades an rpm root through --rpm-mirror; the image keeps its own repo file', { timeout: 20 * 60_000 }, async () => {
  const target = `${registry.host}/fixtures/rpm-target:v1`;
  const port = (mirror.address() as AddressInfo).port;
  requested.length = 0;
  const patch = await run('npx', [
    '--no-install', 'patchd', 'patch', '-i', target, '--buildkit-addr', buildkitd.address, '--tooling-image', `${registry.host}/tooling/dnf:bookworm`,
    '--rpm-mirror', `${unreachable}=http://127.0.0.1:${port}/mirror/world`, '--cache-dir', join(work, 'cache'),
  ], { cwd: repoRoot });
  assert.match(patch.stdout, /^patchd-hello 1\.0-1 -> 1\.1-1 {2}\(upgraded through BuildKit\)$/m);
  assert.match(patch.stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);
  assert.ok(requested.some((p) => p === '/mirror/world/os/repodata/repomd.xml'), `dnf read the mirror's metadata: ${requested.join(' ')}`);
  assert.ok(requested.some((p) => /^\/mirror\/world\/os\/.*patchd-hello-1\.1-1\.noarch\.rpm$/.test(p)), 'and took the package from it');

  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${target}-patched`, `oci:${join(work, 'layout')}:patched`]);
  await run('umoci', ['unpack', '--image', `${join(work, 'layout')}:patched`, join(work, 'bundle')]);
  const rootfs = join(work, 'bundle', 'rootfs');
  const q = await run('rpm', ['--root', rootfs, '--dbpath', '/var/lib/rpm', '-q', 'patchd-hello']);
  assert.equal(q.stdout.trim(), 'patchd-hello-1.1-1.noarch');
  assert.equal(await readFile(join(rootfs, 'etc/yum.repos.d/patchd.repo'), 'utf8'), repoFile, 'the repo file is the image\'s own');
  const files = (await run('sh', ['-c', `cd '${rootfs}' && find . -path ./proc -prune -o -print | sort`])).stdout;
  assert.doesNotMatch(files, /patchd-repos\.d|var\/cache\/patchd-dnf/);
});

test('an image that carries dnf upgrades itself through the mirror (--setopt on its own dnf)', { timeout: 20 * 60_000 }, async () => {
  await mkdir(join(work, 'macros/root'), { recursive: true });
  await mkdir(join(work, 'macros/var/lib'), { recursive: true });
  await writeFile(join(work, 'macros/root/.rpmmacros'), '%_dbpath /var/lib/rpm\n');
  await writeFile(join(work, 'macros/var/lib/.wh.dpkg'), '');
  await run('tar', ['--numeric-owner', '-C', join(work, 'macros'), '-cf', join(work, 'macros.tar'), '.']);
  await pushRootfsImage({ tarPath: join(world, 'tooling.tar'), extraLayers: [join(world, 'target.tar'), join(work, 'repofile.tar'), join(work, 'macros.tar')], registryHost: registry.host, repository: 'fixtures/rpm-with-dnf', tag: 'v1' });
  const image = `${registry.host}/fixtures/rpm-with-dnf:v1`;
  requested.length = 0;
  const port = (mirror.address() as AddressInfo).port;
  const patch = await run('npx', [
    '--no-install', 'patchd', 'patch', '-i', image, '--buildkit-addr', buildkitd.address,
    '--rpm-mirror', `patchd=http://127.0.0.1:${port}/mirror/world/os/`, '--cache-dir', join(work, 'cache'),
  ], { cwd: repoRoot });
  assert.match(patch.stdout, /^patchd-hello 1\.0-1 -> 1\.1-1 {2}\(upgraded through BuildKit\)$/m);
  assert.ok(requested.some((p) => p === '/mirror/world/os/repodata/repomd.xml'));
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${join(work, 'layout2')}:patched`]);
  await run('umoci', ['unpack', '--image', `${join(work, 'layout2')}:patched`, join(work, 'bundle2')]);
  const rootfs = join(work, 'bundle2', 'rootfs');
  assert.equal((await run('rpm', ['--root', rootfs, '--dbpath', '/var/lib/rpm', '-q', 'patchd-hello'])).stdout.trim(), 'patchd-hello-1.1-1.noarch');
  assert.equal(await readFile(join(rootfs, 'etc/yum.repos.d/patchd.repo'), 'utf8'), repoFile);
});

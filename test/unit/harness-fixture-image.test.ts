import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';
import { compareTrees } from '../harness/tree-compare.js';

// pushRootfsImage against a real docker-registry, checked with skopeo and umoci
// (independent of the harness's own hashing) on a small synthetic root.

let work: TempDir;
let registry: ChildProcess | undefined;
let host: string;
let source: string;
let tarPath: string;

async function startRegistry(root: string): Promise<void> {
  const port = await freePort();
  host = `127.0.0.1:${port}`;
  const config = join(root, 'registry.yml');
  await writeFile(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(root, 'storage')}\nhttp:\n  addr: ${host}\n`);
  registry = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://${host}/v2/`).then((r) => r.ok, () => false);
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`docker-registry did not answer on ${host}`);
}

before(async () => {
  work = await tmpDir('patchd-fixture-image');
  await startRegistry(work.path);
  source = join(work.path, 'root');
  await mkdir(join(source, 'etc'), { recursive: true });
  await mkdir(join(source, 'usr', 'bin'), { recursive: true });
  await writeFile(join(source, 'etc', 'os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
  await writeFile(join(source, 'usr', 'bin', 'su'), 'not really su');
  await chmod(join(source, 'usr', 'bin', 'su'), 0o4755);
  await chown(join(source, 'etc', 'os-release'), 0, 42);
  await symlink('usr/bin', join(source, 'bin'));
  tarPath = join(work.path, 'rootfs.tar');
  await run('tar', ['--numeric-owner', '--sort=name', '-C', source, '-cf', tarPath, '.']);
});

after(async () => {
  registry?.kill();
  await work?.remove();
});

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function inspect(ref: string, ...flags: string[]): Promise<string> {
  return (await run('skopeo', ['inspect', '--tls-verify=false', ...flags, `docker://${ref}`])).stdout;
}

test('pushes an OCI image whose layer is the gzip of the tar and whose config names its diffID', async () => {
  const pushed = await pushRootfsImage({ tarPath, registryHost: host, repository: 'fixtures/tiny', tag: 'main' });
  const rawManifest = await inspect(`${host}/fixtures/tiny:main`, '--raw');
  assert.equal(pushed.digest, sha256(Buffer.from(rawManifest)));
  const manifest = JSON.parse(rawManifest);
  assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(manifest.layers.length, 1);
  assert.equal(manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.equal(manifest.layers[0].digest, pushed.layerDigest);

  const config = JSON.parse(await inspect(`${host}/fixtures/tiny:main`, '--config', '--raw'));
  assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: [sha256(await readFile(tarPath))] });
  assert.equal(config.architecture, 'amd64');
  assert.equal(config.os, 'linux');
  assert.equal(config.history.length, 1);

  // The same input gives the same digests: the fixture is reproducible.
  const again = await pushRootfsImage({ tarPath, registryHost: host, repository: 'fixtures/tiny', tag: 'again' });
  assert.deepEqual(again, pushed);
});

test('the pushed image unpacks (umoci) to exactly the source tree', async () => {
  await pushRootfsImage({ tarPath, registryHost: host, repository: 'fixtures/roundtrip', tag: 'main' });
  const layout = join(work.path, 'pulled');
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/fixtures/roundtrip:main`, `oci:${layout}:main`]);
  const bundle = join(work.path, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:main`, bundle]);
  assert.deepEqual(await compareTrees(join(bundle, 'rootfs'), source, { ignore: () => false }), []);
});

test('docker media types and another architecture on request, same layer blob', async () => {
  const oci = await pushRootfsImage({ tarPath, registryHost: host, repository: 'fixtures/arm', tag: 'oci', architecture: 'arm64' });
  const docker = await pushRootfsImage({ tarPath, registryHost: host, repository: 'fixtures/arm', tag: 'docker', architecture: 'arm64', mediaTypes: 'docker' });
  assert.equal(docker.layerDigest, oci.layerDigest);
  assert.notEqual(docker.digest, oci.digest);
  const manifest = JSON.parse(await inspect(`${host}/fixtures/arm:docker`, '--raw'));
  assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
  assert.equal(manifest.layers[0].mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  const config = JSON.parse(await inspect(`${host}/fixtures/arm:docker`, '--config', '--raw'));
  assert.equal(config.architecture, 'arm64');
});

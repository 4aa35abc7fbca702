import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { BuildkitClient } from '../../src/executors/buildkit/client.js';
import { buildPatchLayer } from '../../src/executors/buildkit/executor.js';
import { createLogger } from '../../src/lib/log.js';
import { startBuildkitd } from '../harness/buildkitd.js';
import { bookwormRootfsTar, pushRootfsImage, type PushedImage } from '../harness/fixture-image.js';
import { aptUpgradedRoot } from '../harness/oracle.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';
import { compareTrees, volatilePaths } from '../harness/tree-compare.js';

// zstd end to end: the bookworm fixture with zstd layers (made by the zstd
// CLI) is patched and compared with apt-get's result, as patch-bookworm does;
// a zstd patch layer is read back by tools that share no code with patchd
// (skopeo's containers/image, the zstd CLI, tar, umoci); a zstd bomb fails the job.

const repoRoot = new URL('../..', import.meta.url).pathname;
const patchd = join(repoRoot, 'bin/patchd.js');
const zstdLayer = 'application/vnd.oci.image.layer.v1.tar+zstd';
let registry: RunningRegistry;
let work: TempDir;
let pushed: PushedImage;
let image: string;

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-e2e-zstd');
  pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm-zstd', tag: 'main', compression: 'zstd' });
  image = `${registry.host}/fixtures/bookworm-zstd:main`;
});

after(async () => {
  await registry?.stop();
  await work?.remove();
});

interface RawManifest { layers: { mediaType: string; digest: string; size: number }[]; config: { digest: string } }

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

async function skopeoRaw(ref: string): Promise<RawManifest> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return JSON.parse(stdout) as RawManifest;
}

/**
 * The pushed image as an image user sees it: skopeo (containers/image)
 * decompresses every zstd layer and writes gzip, which umoci (0.4.7 reads no
 * zstd) unpacks; then the root is compared with apt-get upgrade's.
 */
async function assertEqualsOracle(ref: string, name: string): Promise<void> {
  const layout = join(work.path, `${name}-gzip`);
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-compress', '--dest-compress-format', 'gzip', `docker://${ref}`, `oci:${layout}:${name}`]);
  const bundle = join(work.path, `${name}-bundle`);
  await run('umoci', ['unpack', '--image', `${layout}:${name}`, bundle]);
  const oracle = await aptUpgradedRoot();
  const differences = await compareTrees(join(bundle, 'rootfs'), oracle.upgradedRoot, { ignore: volatilePaths });
  assert.deepEqual(differences, [], `${ref} differs from apt-get upgrade:\n${differences.slice(0, 40).map((d) => JSON.stringify(d)).join('\n')}`);
}

test('an image whose layers are zstd is patched (gzip patch layer by default) and equals apt-get upgrade', { timeout: 20 * 60_000 }, async () => {
  const original = await skopeoRaw(image);
  assert.deepEqual(original.layers.map((l) => l.mediaType), [zstdLayer], 'the fixture really has a zstd layer');

  const patch = await run('node', [patchd, 'patch', '-i', image, '--cache-dir', join(work.path, 'cache')], { cwd: repoRoot });
  assert.match(patch.stdout, /patched .* -> .*:main-patched \(sha256:[0-9a-f]{64}\)/, patch.stdout);

  const manifest = await skopeoRaw(`${image}-patched`);
  assert.equal(manifest.layers.length, 2, 'exactly one layer added');
  assert.deepEqual(manifest.layers[0], original.layers[0], 'the zstd base layer is kept byte for byte');
  assert.equal(manifest.layers[1]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip', 'the patch layer is gzip unless asked otherwise');
  await assertEqualsOracle(`${image}-patched`, 'default');
});

test('--compression zstd: a +zstd patch layer that skopeo, the zstd CLI and tar read back, and the image equals apt-get upgrade', { timeout: 20 * 60_000 }, async () => {
  const target = `${registry.host}/fixtures/bookworm-zstd:main-zstd`;
  const patch = await run('node', [patchd, 'patch', '-i', image, '-t', target, '--compression', 'zstd', '--cache-dir', join(work.path, 'cache')], { cwd: repoRoot });
  assert.match(patch.stdout, /patched .* -> .*:main-zstd \(sha256:[0-9a-f]{64}\)/, patch.stdout);

  const manifest = await skopeoRaw(target);
  assert.equal(manifest.layers.length, 2, 'exactly one layer added');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest, 'original layer unchanged');
  const patchLayer = manifest.layers[1]!;
  assert.equal(patchLayer.mediaType, zstdLayer, 'the patch layer descriptor says +zstd');

  // skopeo copies the blobs as they are (no recompression) into an OCI layout.
  const layout = join(work.path, 'zstd-layout');
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${target}`, `oci:${layout}:zstd`]);
  const blob = join(layout, 'blobs', 'sha256', patchLayer.digest.slice('sha256:'.length));
  assert.equal(await sha256File(blob), patchLayer.digest, 'the blob skopeo fetched is the one the manifest names');

  await run('zstd', ['-q', '-t', blob]); // frame and checksum check by the reference decoder
  const tarPath = join(work.path, 'patch-layer.tar');
  await run('zstd', ['-q', '-d', '-f', blob, '-o', tarPath]);
  const listing = (await run('tar', ['-tf', tarPath])).stdout.split('\n');
  assert.ok(listing.includes('var/lib/dpkg/status'), `tar -t lists the dpkg status the patch rewrote: ${listing.slice(0, 20).join(' ')}`);
  assert.ok(listing.some((p) => p.startsWith('usr/share/zoneinfo/')), 'tar -t lists the upgraded tzdata files');

  const config = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', manifest.config.digest.slice('sha256:'.length)), 'utf8')) as { rootfs: { diff_ids: string[] } };
  assert.equal(config.rootfs.diff_ids[1], await sha256File(tarPath), 'the config\'s diffID is the sha256 of what zstd -d gives');

  await assertEqualsOracle(target, 'zstd');
});

test('--compression takes gzip or zstd only', async () => {
  const result = await run('node', [patchd, 'patch', '-i', image, '--compression', 'brotli'], { allowFailure: true });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /--compression takes gzip or zstd/);
});

test('--compression zstd on a Docker schema 2 image is refused before anything is built or pushed', async () => {
  await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm-docker', tag: 'main', mediaTypes: 'docker' });
  const result = await run('node', [patchd, 'patch', '-i', `${registry.host}/fixtures/bookworm-docker:main`, '--compression', 'zstd', '--cache-dir', join(work.path, 'cache')], { allowFailure: true });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /zstd patch layers need an OCI image manifest.*\[COMPRESSION_UNSUPPORTED\]/, result.stderr);
  const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/bookworm-docker`]);
  assert.deepEqual(JSON.parse(stdout).Tags, ['main'], 'nothing pushed');
});

/** A tar of one file of `size` zero bytes, written sparse: its header, then a hole (the data, padding and end-of-archive blocks are all zeros). */
async function sparseZerosTar(path: string, size: number): Promise<void> {
  const pack = tar.pack();
  const header = new Promise<Buffer>((resolve) => pack.once('data', (chunk: unknown) => resolve(Buffer.from(chunk as Buffer))));
  pack.entry({ name: 'zeros', size, mode: 0o644 });
  const bytes = await header;
  pack.destroy();
  assert.equal(bytes.length, 512, 'one tar header block');
  await writeFile(path, bytes);
  await truncate(path, 512 + size + 1024);
}

test('a zstd bomb (a few KiB expanding past the default 1 GiB floor) fails the job with DECOMPRESSION_LIMIT, nothing pushed', { timeout: 10 * 60_000 }, async () => {
  const tarPath = join(work.path, 'bomb.tar');
  await sparseZerosTar(tarPath, 1.25 * 2 ** 30);
  await pushRootfsImage({ tarPath, registryHost: registry.host, repository: 'hostile/zstd-bomb', tag: 'main', compression: 'zstd' });
  const [layer] = (await skopeoRaw(`${registry.host}/hostile/zstd-bomb:main`)).layers;
  assert.ok(layer!.mediaType === zstdLayer && layer!.size < 256 * 1024, `the bomb is a small zstd blob: ${JSON.stringify(layer)}`);

  const result = await run('node', [patchd, 'patch', '-i', `${registry.host}/hostile/zstd-bomb:main`, '--cache-dir', join(work.path, 'cache')], { allowFailure: true, timeoutMs: 5 * 60_000 });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /\[DECOMPRESSION_LIMIT\]/, result.stderr);
  assert.match(result.stderr, /decompression bomb/, result.stderr);
  const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/hostile/zstd-bomb`]);
  assert.deepEqual(JSON.parse(stdout).Tags, ['main'], 'nothing pushed');
});

test('BuildKit pulls the zstd base and exports the patch layer zstd or gzip as asked, even when the build is cached', { timeout: 15 * 60_000 }, async () => {
  const buildkitd = await startBuildkitd();
  const client = new BuildkitClient({ address: buildkitd.address });
  try {
    const build = (mediaType: string) => buildPatchLayer(
      { client, baseRef: `${registry.host}/fixtures/bookworm-zstd@${pushed.digest}`, platform: { architecture: 'amd64', os: 'linux' }, workDir: work.path, logger: createLogger({ level: 'silent' }) },
      (base) => ({ lower: base, upper: base.run({ args: ['/bin/sh', '-c', 'echo patched > /etc/patchd-probe'], name: 'probe' }) }),
      mediaType,
    );
    // zstd first, then the same (now cached) build as gzip: each export has the compression asked for.
    for (const [mediaType, decompress, magic] of [[zstdLayer, 'zstd -dc', '28b52ffd'], ['application/vnd.oci.image.layer.v1.tar+gzip', 'gzip -dc', '1f8b']] as const) {
      const layer = await build(mediaType);
      assert.equal(layer.mediaType, mediaType, 'descriptor media type');
      const path = join(work.path, `buildkit-${magic}.blob`);
      await pipeline(await layer.open(), createWriteStream(path));
      assert.equal((await readFile(path)).subarray(0, magic.length / 2).toString('hex'), magic, `${mediaType} blob magic`);
      assert.equal(await sha256File(path), layer.digest, 'digest of the exported blob');
      const files = (await run('sh', ['-c', `${decompress} '${path}' | tar -t`])).stdout.split('\n').filter(Boolean).sort();
      assert.deepEqual(files, ['etc/', 'etc/patchd-probe'], `${decompress} | tar -t of BuildKit's layer`);
    }
  } finally {
    client.close();
    await buildkitd.stop();
  }
});

test('patchd serve with registries.<name>.policy.compression: zstd pushes a +zstd patch layer', { timeout: 15 * 60_000 }, async () => {
  const registryPort = await freePort();
  const serve = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'serve-data'))}`,
      `cacheDir: ${JSON.stringify(join(work.path, 'cache'))}`,
      'worker: { concurrency: 1, retryBaseMs: 500 }',
      'registries:',
      '  local:',
      `    url: http://127.0.0.1:${registryPort}`,
      `    hosts: ["127.0.0.1:${registryPort}"]`,
      '    webhookSecret: change-me',
      '    policy: { compression: zstd }',
    ],
    env: { PATCHD_LOCAL_WEBHOOK_SECRET: 's3cret' },
    logs: 'inherit',
  });
  let notifying: RunningRegistry | undefined;
  try {
    notifying = await startRegistry({ port: registryPort, notifications: { url: `${serve.url}/webhooks/distribution`, headers: { Authorization: ['Bearer s3cret'] } } });
    // Plain gzip layers in: the policy, not the input, decides the patch layer's compression.
    await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: notifying.host, repository: 'fixtures/bookworm', tag: 'main' });
    let tags: string[] = [];
    for (let i = 0; i < 600 && !tags.includes('main-patched'); i++) {
      await new Promise((r) => setTimeout(r, 500));
      tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${notifying.host}/fixtures/bookworm`])).stdout).Tags;
    }
    assert.ok(tags.includes('main-patched'), `tags: ${tags.join(', ')}`);
    const manifest = await skopeoRaw(`${notifying.host}/fixtures/bookworm:main-patched`);
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), ['application/vnd.oci.image.layer.v1.tar+gzip', zstdLayer], 'gzip base, zstd patch layer');
  } finally {
    await serve.stop();
    await notifying?.stop();
  }
});

import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { Agent } from 'undici';
import { silentLogger } from '../../src/lib/log.js';
import { createRegistryClient } from '../../src/oci/client.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// A multi-platform index: the Debian platform is patched, the other keeps its
// digest, and the result is a new index tagged <tag>-patched.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let work: TempDir;

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-multi');
});
after(async () => {
  await registry?.stop();
  await work?.remove();
});

test('an index is patched per platform; unpatchable platforms keep their digests', async () => {
  const debian = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'multi/app', tag: 'amd64' });
  const plainTar = join(work.path, 'plain.tar');
  const pack = tar.pack();
  pack.entry({ name: 'app', mode: 0o755 }, '#!/bin/sh\n');
  pack.finalize();
  await pipeline(pack, createWriteStream(plainTar));
  const other = await pushRootfsImage({ tarPath: plainTar, registryHost: registry.host, repository: 'multi/app', tag: 'arm64', architecture: 'arm64' });

  const client = createRegistryClient({ logger: silentLogger(), dispatcher: new Agent() });
  const sizeOf = async (tag: string) => (await client.getManifest(parseReference(`${registry.host}/multi/app:${tag}`))).bytes.length;
  const index = {
    schemaVersion: 2, mediaType: MediaType.ociIndex,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: debian.digest, size: await sizeOf('amd64'), platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: MediaType.ociManifest, digest: other.digest, size: await sizeOf('arm64'), platform: { architecture: 'arm64', os: 'linux' } },
    ],
  };
  await client.putManifest(parseReference(`${registry.host}/multi/app:v1`), Buffer.from(JSON.stringify(index)), MediaType.ociIndex);

  const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${registry.host}/multi/app:v1`, '--cache-dir', join(work.path, 'cache')]);
  assert.match(result.stdout, /\[linux\/arm64\] skipped: no dpkg or rpm database/);
  assert.match(result.stdout, /\[linux\/amd64\] tzdata /);

  const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/multi/app:v1-patched`])).stdout) as typeof index & { annotations?: Record<string, string> };
  assert.equal(raw.mediaType, MediaType.ociIndex);
  const [amd64, arm64] = raw.manifests;
  assert.notEqual(amd64!.digest, debian.digest, 'the Debian platform points at a patched manifest');
  assert.equal(arm64!.digest, other.digest, 'the other platform is untouched');
  assert.equal(raw.annotations?.['io.patchd.patched'], 'true');
  const patched = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/multi/app@${amd64!.digest}`])).stdout) as { layers: unknown[] };
  assert.equal(patched.layers.length, 2);
  // skopeo resolves the platform from the index like a runtime would.
  const inspected = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--override-arch', 'amd64', `docker://${registry.host}/multi/app:v1-patched`])).stdout) as { Layers: string[] };
  assert.equal(inspected.Layers.length, 2);
});

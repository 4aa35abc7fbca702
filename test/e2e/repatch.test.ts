import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent } from 'undici';
import { silentLogger } from '../../src/lib/log.js';
import { createRegistryClient, type RegistryClient } from '../../src/oci/client.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { patchImage, type PatchOptions, type PatchOutcome } from '../../src/pipeline/patch-image.js';
import { PublishError } from '../../src/publish/tags.js';
import { OsvDatabase } from '../../src/scan/sources/osv.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { bookwormRootfsTar, pushRootfsImage, type PushedImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// Re-patching and tag schemes against a real registry, the real Debian
// archive and the bookworm fixture: a patched image is patched from its
// original again (one patch layer, never stacked), nothing new pushes
// nothing, incremental tags count up from the registry's tag list, and an
// immutable tag (Harbor's 412, played by a loopback proxy) is an actionable error.

const repoRoot = new URL('../..', import.meta.url).pathname;
const original = { libexpat1: '2.5.0-1+deb12u2', openssl: '3.0.20-1~deb12u2' };
let registry: RunningRegistry;
let work: TempDir;
let client: RegistryClient;
let dispatcher: Agent;
let expatOnly: OsvDatabase;
let expatAndOpenssl: OsvDatabase;

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-repatch');
  dispatcher = new Agent();
  client = createRegistryClient({ logger: silentLogger(), dispatcher });
  const record = async (id: string) => JSON.parse(await readFile(join(repoRoot, 'fixtures/osv/Debian', `${id}.json`), 'utf8')) as unknown;
  expatOnly = new OsvDatabase();
  expatOnly.add(await record('DEBIAN-CVE-2026-102633'), 'expat');
  expatAndOpenssl = new OsvDatabase();
  expatAndOpenssl.add(await record('DEBIAN-CVE-2026-102633'), 'expat');
  expatAndOpenssl.add(await record('DEBIAN-CVE-2026-35189'), 'openssl');
});

after(async () => {
  await registry?.stop();
  await dispatcher?.close();
  await work?.remove();
});

async function push(repository: string, host = registry.host): Promise<PushedImage> {
  return pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: host, repository, tag: 'main' });
}

function patch(image: string, osv: OsvDatabase, extra: Partial<PatchOptions> = {}, viaClient = client): Promise<PatchOutcome> {
  return patchImage(
    { client: viaClient, dispatcher, logger: silentLogger(), cacheDir: join(work.path, 'cache'), tmpDir: work.path },
    { image: parseReference(image), advisories: { osv }, tagSuffix: '-patched', ignoreErrors: false, dryRun: false, ...extra },
  );
}

async function manifestOf(ref: string): Promise<{ digest: string; layers: { digest: string }[]; annotations?: Record<string, string> }> {
  const got = await client.getManifest(parseReference(ref));
  return { digest: got.digest, ...(JSON.parse(got.bytes.toString('utf8')) as { layers: { digest: string }[]; annotations?: Record<string, string> }) };
}

/** Versions as dpkg-query reads them from the image unpacked by skopeo and umoci (none of patchd's code). */
async function installed(ref: string, name: string): Promise<Record<string, string>> {
  const dir = join(work.path, name);
  await mkdir(dir, { recursive: true });
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}/layout:x`]);
  await run('umoci', ['unpack', '--image', `${dir}/layout:x`, `${dir}/bundle`]);
  const { stdout } = await run('dpkg-query', [`--admindir=${dir}/bundle/rootfs/var/lib/dpkg`, '-W', '-f', '${Package} ${Version}\n', 'libexpat1', 'openssl']);
  return Object.fromEntries(stdout.trim().split('\n').map((line) => line.split(' ') as [string, string]));
}

test('a patched image is re-patched from its original: one patch layer, both fixes; nothing new pushes nothing', { timeout: 20 * 60_000 }, async () => {
  const pushed = await push('re/app');
  const image = `${registry.host}/re/app:main`;

  const first = await patch(image, expatOnly);
  assert.equal(first.status, 'patched', 'the expat advisory is fixed');
  assert.equal(first.target, `${registry.host}/re/app:main-patched`, 'floating tag');
  const firstVersions = await installed(`${image}-patched`, 'first');
  assert.notEqual(firstVersions['libexpat1'], original.libexpat1, 'libexpat1 upgraded');
  assert.equal(firstVersions['openssl'], original.openssl, 'openssl untouched: no advisory names it yet');

  // A second advisory; the PATCHED image is what is patched again.
  const second = await patch(`${image}-patched`, expatAndOpenssl);
  assert.equal(second.status, 'patched', `new fix, new push (${second.reason ?? ''})`);
  assert.equal(second.target, `${registry.host}/re/app:main-patched`, 're-patched under the same tag');
  assert.equal(second.sourceDigest, pushed.digest, 'patched from the original');
  const manifest = await manifestOf(`${image}-patched`);
  assert.equal(manifest.digest, second.digest, 'the tag names the new patch');
  assert.equal(manifest.layers.length, 2, 'exactly one patch layer over the original layer');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest, "the original's layer, unchanged");
  assert.equal(manifest.annotations?.['org.opencontainers.image.base.digest'], pushed.digest, 'base.digest is the original');
  assert.equal(manifest.annotations?.['org.opencontainers.image.base.name'], image, 'base.name is the original');
  const secondVersions = await installed(`${image}-patched`, 'second');
  assert.equal(secondVersions['libexpat1'], firstVersions['libexpat1'], 'the first fix is kept');
  assert.notEqual(secondVersions['openssl'], original.openssl, 'openssl upgraded');

  // Nothing new: neither the patched image nor the original (pushed again) gets a new push.
  const third = await patch(`${image}-patched`, expatAndOpenssl);
  assert.equal(third.status, 'up-to-date', 'nothing new to fix');
  assert.equal(third.reason, `up to date: ${registry.host}/re/app:main-patched already has every fix`, 'the reason');
  const again = await patch(image, expatAndOpenssl);
  assert.equal(again.status, 'up-to-date', 'the original again: its patch already has every fix');
  assert.equal((await manifestOf(`${image}-patched`)).digest, second.digest, 'tag digest unchanged');
});

test('incremental tags: -N after the highest existing N, the floating tag moved along', { timeout: 20 * 60_000 }, async () => {
  const pushed = await push('inc/app');
  const image = `${registry.host}/inc/app:main`;
  // An older numbered tag (from before): numbering continues after it.
  const main = await client.getManifest(parseReference(image));
  await client.putManifest(parseReference(`${image}-patched-4`), main.bytes, main.mediaType);

  const first = await patch(image, expatOnly, { tagScheme: 'incremental' });
  assert.equal(first.target, `${registry.host}/inc/app:main-patched-5`, 'one more than the highest N');
  assert.deepEqual(first.tags, [`${registry.host}/inc/app:main-patched-5`, `${registry.host}/inc/app:main-patched`], 'numbered and floating');
  assert.equal((await manifestOf(`${image}-patched`)).digest, first.digest, 'floating tag on the same digest');

  const second = await patch(image, expatAndOpenssl, { tagScheme: 'incremental' });
  assert.equal(second.target, `${registry.host}/inc/app:main-patched-6`, 'next number');
  assert.equal((await manifestOf(`${image}-patched`)).digest, second.digest, 'floating tag moved');
  assert.equal((await manifestOf(`${image}-patched-5`)).digest, first.digest, 'the older numbered tag stays');
  const layers = (await manifestOf(`${image}-patched-6`)).layers;
  assert.deepEqual([layers.length, layers[0]!.digest], [2, pushed.layerDigest], 'one patch layer on the original');
});

test('an immutable tag (Harbor 412) is an actionable error; incremental still publishes its -N tag', { timeout: 20 * 60_000 }, async () => {
  // Harbor's immutability rule: a PUT of a manifest under a tag that exists is refused with 412.
  const existing = new Set<string>();
  const proxy: FaultProxy = await startFaultProxy({
    target: `http://${registry.host}`,
    plan: (req) => {
      const tag = req.method === 'PUT' ? /^\/v2\/imm\/app\/manifests\/([^/?]+)$/.exec(req.path)?.[1] : undefined;
      if (!tag || tag.startsWith('sha256:')) return undefined;
      if (!existing.has(tag)) { existing.add(tag); return undefined; }
      return { kind: 'status', status: 412, body: JSON.stringify({ errors: [{ code: 'PRECONDITION', message: `Failed to process request due to 'imm/app:${tag}' configured as immutable.` }] }) };
    },
  });
  try {
    const viaProxy = createRegistryClient({ logger: silentLogger(), dispatcher });
    await push('imm/app');
    const image = `${proxy.host}/imm/app:main`;
    const first = await patch(image, expatOnly, {}, viaProxy);
    assert.equal(first.status, 'patched', 'a new tag is accepted');

    await assert.rejects(patch(image, expatAndOpenssl, {}, viaProxy), (error: unknown) => {
      assert.ok(error instanceof PublishError, `a PublishError, got ${String(error)}`);
      assert.equal(error.code, 'TAG_IMMUTABLE', 'typed');
      assert.match(error.message, /tag main-patched is immutable in 127\.0\.0\.1:\d+\/imm\/app .*use tagScheme incremental or allow overwriting/, 'actionable');
      return true;
    }, 'moving an immutable tag fails');

    const incremental = await patch(image, expatAndOpenssl, { tagScheme: 'incremental' }, viaProxy);
    assert.equal(incremental.status, 'patched', 'the numbered tag is new, so it is accepted');
    assert.deepEqual(incremental.tags, [`${proxy.host}/imm/app:main-patched-1`], 'only the numbered tag');
    assert.match(incremental.notes?.[0] ?? '', /main-patched is immutable.*the result is .*main-patched-1/, 'the note says why the floating tag did not move');
    assert.equal((await manifestOf(`${registry.host}/imm/app:main-patched`)).digest, first.digest, 'the floating tag still names the first patch');
  } finally {
    await proxy.stop();
  }
});

test('platforms: only the selected platforms of an index are patched, the others keep their manifests', { timeout: 20 * 60_000 }, async () => {
  const tar = await bookwormRootfsTar();
  const amd64 = await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'plat/app', tag: 'amd64' });
  const arm64 = await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'plat/app', tag: 'arm64', architecture: 'arm64' });
  const size = async (tag: string) => (await client.getManifest(parseReference(`${registry.host}/plat/app:${tag}`))).bytes.length;
  const index = {
    schemaVersion: 2, mediaType: MediaType.ociIndex,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: amd64.digest, size: await size('amd64'), platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: MediaType.ociManifest, digest: arm64.digest, size: await size('arm64'), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
    ],
  };
  await client.putManifest(parseReference(`${registry.host}/plat/app:v1`), Buffer.from(JSON.stringify(index)), MediaType.ociIndex);

  await assert.rejects(patch(`${registry.host}/plat/app:v1`, expatOnly, { platforms: ['linux'] }), /PLATFORM_INVALID|not os\/arch/, 'a malformed platform is refused');
  const outcome = await patch(`${registry.host}/plat/app:v1`, expatOnly, { platforms: ['linux/amd64'] });
  assert.equal(outcome.status, 'patched', 'the selected platform is patched');
  const byPlatform = Object.fromEntries(outcome.platforms.map((p) => [p.platform, p]));
  assert.equal(byPlatform['linux/arm64/v8']?.skipped, 'platform not selected (--platform)', 'the other platform is not touched');
  const patched = JSON.parse((await client.getManifest(parseReference(`${registry.host}/plat/app:v1-patched`))).bytes.toString('utf8')) as typeof index;
  assert.notEqual(patched.manifests[0]!.digest, amd64.digest, 'amd64 points at a patched manifest');
  assert.equal(patched.manifests[1]!.digest, arm64.digest, 'arm64 keeps its original manifest');
  assert.equal((await manifestOf(`${registry.host}/plat/app@${patched.manifests[0]!.digest}`)).layers.length, 2, 'one patch layer');

  // Again, from the original and from the patched index: nothing new, nothing pushed.
  const tagged = (await client.getManifest(parseReference(`${registry.host}/plat/app:v1-patched`))).digest;
  const again = await patch(`${registry.host}/plat/app:v1`, expatOnly, { platforms: ['linux/amd64'] });
  assert.equal(again.status, 'up-to-date', `original again: ${again.reason ?? ''}`);
  const fromPatched = await patch(`${registry.host}/plat/app:v1-patched`, expatOnly, { platforms: ['linux/amd64'] });
  assert.equal(fromPatched.status, 'up-to-date', `patched index again: ${fromPatched.reason ?? ''}`);
  assert.match(fromPatched.reason ?? '', /plat\/app:v1-patched already has every fix/, 'the reason names the tag');
  assert.equal((await client.getManifest(parseReference(`${registry.host}/plat/app:v1-patched`))).digest, tagged, 'tag digest unchanged');
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { parseGoDuration, parsePlatforms } from '../../src/cli/copa.js';
import { ConfigSchema } from '../../src/config.js';
import type { RegistryClient } from '../../src/oci/client.js';
import { parseReference } from '../../src/oci/reference.js';
import { ociLayoutClient, refNameAnnotation } from '../../src/publish/oci-layout.js';
import { copaTagSuffix } from '../../src/publish/tag-suffix.js';
import { tmpDir } from '../harness/tools.js';

test('--tag-suffix follows Copa: joined with "-", a leading "-" not doubled, empty means patched', () => {
  assert.equal(copaTagSuffix('patched'), '-patched', 'Copa: main + patched = main-patched');
  assert.equal(copaTagSuffix('-patched'), '-patched', 'a leading dash is accepted');
  assert.equal(copaTagSuffix('hotfix.1'), '-hotfix.1', 'any suffix');
  assert.equal(copaTagSuffix(''), '-patched', 'Copa: an empty suffix means patched');
});

test('serve\'s policy.tagSuffix follows the same rule', () => {
  const config = (tagSuffix?: string) => ConfigSchema.parse({
    registries: { hub: { url: 'http://127.0.0.1:5000', hosts: ['127.0.0.1:5000'], policy: tagSuffix === undefined ? {} : { tagSuffix } } },
  }).registries['hub']!.policy.tagSuffix;
  assert.equal(config('patched'), '-patched', 'patched gives <tag>-patched');
  assert.equal(config('-patched'), '-patched', '-patched keeps its meaning');
  assert.equal(config(undefined), '-patched', 'the default');
});

test('--timeout takes Go durations (Copa parses it with time.ParseDuration)', () => {
  assert.equal(parseGoDuration('5m'), 300_000, '5m');
  assert.equal(parseGoDuration('1h30m'), 5_400_000, '1h30m');
  assert.equal(parseGoDuration('1.5s'), 1500, '1.5s');
  assert.equal(parseGoDuration('500ms'), 500, '500ms');
  for (const bad of ['5', 'soon', '5 m', '', 'm5', '1d']) assert.throws(() => parseGoDuration(bad), /takes a duration/, `${JSON.stringify(bad)} is refused`);
});

test('--platform: comma-separated and repeatable, os/arch[/variant]', () => {
  assert.deepEqual(parsePlatforms(['linux/amd64,linux/arm64', 'linux/arm/v7']), ['linux/amd64', 'linux/arm64', 'linux/arm/v7'], 'all three');
  assert.equal(parsePlatforms(undefined), undefined, 'none given: every platform');
  assert.throws(() => parsePlatforms(['amd64']), /os\/arch/, 'an architecture alone is refused');
});

/** A registry that serves one blob and one manifest, and fails every write. */
function readOnlyRegistry(blob: Buffer, manifest: Buffer): RegistryClient {
  const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const refuse = async (): Promise<never> => { throw new Error('the registry must not be written to'); };
  return {
    getManifest: async (ref) => {
      if (ref.tag === 'main' || ref.digest === digestOf(manifest)) return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(manifest), bytes: manifest };
      throw new Error(`no manifest ${ref.tag ?? ref.digest}`);
    },
    headManifest: async () => undefined,
    putManifest: refuse,
    openBlob: async (_repo, desc) => { assert.equal(desc.digest, digestOf(blob), 'only the known blob is read'); return Readable.from([blob]); },
    hasBlob: async () => true,
    pushBlob: refuse,
    listTags: async () => ['main', 'main-patched'],
    getReferrers: async () => undefined,
  };
}

test('--oci-dir: writes land in an OCI layout, never in the registry; the target tag is the layout\'s', async () => {
  const dir = await tmpDir('patchd-oci-layout');
  try {
    const blob = Buffer.from('layer bytes');
    const blobDigest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }));
    const source = parseReference('127.0.0.1:5000/app:main');
    const layout = join(dir.path, 'out');
    const client = ociLayoutClient(readOnlyRegistry(blob, manifest), layout, { source });

    // The source tag is read from the registry; a target tag the registry also has is not (the layout is the destination).
    assert.equal((await client.getManifest(source)).bytes.toString(), manifest.toString(), 'source from the registry');
    assert.equal(await client.headManifest(parseReference('127.0.0.1:5000/app:main-patched')), undefined, 'the registry\'s main-patched is not the layout\'s');
    await assert.rejects(client.getManifest(parseReference('127.0.0.1:5000/app:main-patched')), { code: 'MANIFEST_UNKNOWN' }, 'a tag the layout lacks is unknown');

    // A blob is copied from wherever open() reads it, verified.
    assert.equal(await client.pushBlob(source, { digest: blobDigest, size: blob.length }, async () => Readable.from([blob])), 'uploaded', 'copied into the layout');
    assert.equal(await client.pushBlob(source, { digest: blobDigest, size: blob.length }, async () => Readable.from([blob])), 'exists', 'second time: already there');
    await assert.rejects(client.pushBlob(source, { digest: `sha256:${'0'.repeat(64)}`, size: blob.length }, async () => Readable.from([blob])), { code: 'BLOB_DIGEST_MISMATCH' }, 'bytes that do not match are refused');
    assert.equal(await readFile(join(layout, 'blobs', 'sha256', blobDigest.slice(7)), 'utf8'), 'layer bytes', 'the blob file');

    const patched = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [{ digest: blobDigest }] }));
    const digest = await client.putManifest(parseReference('127.0.0.1:5000/app:main-patched'), patched, 'application/vnd.oci.image.manifest.v1+json');
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    assert.deepEqual(index.manifests.map((m) => [m.digest, m.annotations?.[refNameAnnotation]]), [[digest, 'main-patched']], 'index.json names the result by its tag');
    assert.deepEqual(JSON.parse(await readFile(join(layout, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' }, 'the oci-layout marker');
    assert.equal((await client.getManifest(parseReference('127.0.0.1:5000/app:main-patched'))).digest, digest, 'read back from the layout');
    assert.deepEqual(await client.listTags(source), ['main-patched'], 'the layout\'s tags');
  } finally {
    await dir.remove();
  }
});

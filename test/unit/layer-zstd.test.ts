import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import tar from 'tar-stream';
import { ImageError } from '../../src/image/errors.js';
import { ImageFilesystem, forEachEntry } from '../../src/image/filesystem.js';
import { openLayerTar, type Layer } from '../../src/image/layer.js';
import { createLayerBuilder } from '../../src/image/layer-builder.js';
import { MediaType } from '../../src/oci/media-types.js';
import { CompressionError, patchLayerMediaType } from '../../src/pipeline/layer-media-type.js';
import { tmpDir } from '../harness/tools.js';

// zstd layers: read with the runtime's zlib under the same bomb limits as
// gzip, and written so that the reference zstd CLI (not node:zlib) reads them back.

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const work = await tmpDir('patchd-zstd-unit');
after(() => work.remove());

/** The zstd CLI, the reference implementation, as an independent encoder/decoder. */
function zstd(args: string[], input: Buffer): Buffer {
  const result = spawnSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 64 * 2 ** 20 });
  assert.equal(result.status, 0, `zstd ${args.join(' ')} failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

async function tarOf(entries: { name: string; body: Buffer | string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, mode: 0o644 }, e.body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function blobLayer(blob: Buffer, mediaType: string = MediaType.ociLayerZstd): Layer & { source?: Readable } {
  const layer: Layer & { source?: Readable } = {
    mediaType, digest: sha256(blob), size: blob.length,
    open: async () => (layer.source = Readable.from([blob.subarray(0, blob.length >> 1), blob.subarray(blob.length >> 1)])),
  };
  return layer;
}

async function entriesOf(layer: Layer, limits?: Parameters<typeof openLayerTar>[1]): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  await forEachEntry(await openLayerTar(layer, limits), async (header, body) => {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    seen.set(header.name, createHash('sha256').update(Buffer.concat(chunks)).digest('hex'));
  });
  return seen;
}

const code = (c: string) => (e: unknown) => e instanceof ImageError && e.code === c;

test('a layer the zstd CLI compressed reads as its tar, under the OCI and the Docker-world media type', async () => {
  const files = [{ name: 'etc/os-release', body: 'ID=debian\n' }, { name: 'usr/lib/blob', body: randomBytes(300 * 1024) }];
  const blob = zstd(['-19'], await tarOf(files));
  const expected = new Map(files.map((f) => [f.name, createHash('sha256').update(f.body).digest('hex')]));
  assert.deepEqual(await entriesOf(blobLayer(blob)), expected, 'OCI +zstd layer entries');
  assert.deepEqual(await entriesOf(blobLayer(blob, MediaType.dockerLayerZstd)), expected, 'Docker tar.zstd layer entries');
  const fs = await ImageFilesystem.load([blobLayer(blob)], { capture: () => true });
  assert.equal((await fs.readFile('etc/os-release'))?.toString(), 'ID=debian\n', 'the filesystem view reads zstd layers too');
});

test('a zstd bomb stops at the byte limit with DECOMPRESSION_LIMIT, and its blob is closed', async () => {
  const blob = zstd(['-19'], await tarOf([{ name: 'zeros', body: Buffer.alloc(16 * 2 ** 20) }]));
  assert.ok(blob.length < 64 * 1024, `the bomb is small (${blob.length} bytes)`);
  const layer = blobLayer(blob);
  await assert.rejects(entriesOf(layer, { maxBytes: 2 ** 20 }), code('DECOMPRESSION_LIMIT'), 'byte cap');
  assert.equal(layer.source?.destroyed, true, 'the blob is closed');
  // The ratio cap (the default limits' second guard) applies to zstd as to gzip.
  await assert.rejects(entriesOf(blobLayer(blob), { maxBytes: 2 ** 40, maxRatio: 200, ratioFloorBytes: 2 ** 20 }), code('DECOMPRESSION_LIMIT'), 'ratio cap');
});

test('a zstd frame that asks for a window past 128 MiB is refused before anything is allocated', async () => {
  // Streamed through a pipe, the CLI keeps --long=28's 256 MiB window in the frame header.
  const blob = zstd(['--long=28'], await tarOf([{ name: 'a', body: 'a' }]));
  await assert.rejects(entriesOf(blobLayer(blob)), (e: unknown) => e instanceof ImageError && e.code === 'LAYER_INVALID' && /too much memory/.test(e.message), 'window too large');
});

test('a truncated zstd layer is LAYER_INVALID', async () => {
  const blob = zstd([], await tarOf([{ name: 'data', body: randomBytes(200 * 1024) }]));
  await assert.rejects(entriesOf(blobLayer(blob.subarray(0, blob.length - 1000))), code('LAYER_INVALID'), 'truncated');
});

test('the layer builder writes zstd for a +zstd media type: the zstd CLI decompresses it to the tar its diffID names', async () => {
  const builder = createLayerBuilder({ tmpDir: work.path, mediaType: MediaType.ociLayerZstd });
  builder.addDirectory('etc', { mode: 0o755 });
  await builder.addFile('etc/patched', { mode: 0o644 }, Buffer.from('yes\n'));
  await builder.addFile('usr/lib/big', { mode: 0o644 }, randomBytes(2 * 2 ** 20));
  builder.addWhiteout('etc/old');
  const written = await builder.write();
  try {
    const blob = await readFile(written.path);
    assert.equal(written.mediaType, MediaType.ociLayerZstd, 'descriptor media type');
    assert.equal(written.digest, sha256(blob), 'digest of the zstd blob');
    assert.equal(written.size, blob.length, 'size of the zstd blob');
    assert.deepEqual([...blob.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'zstd frame magic');
    const tarBytes = zstd(['-d'], blob);
    assert.equal(written.diffId, sha256(tarBytes), 'diffID is the sha256 of what zstd -d gives');
    const listed = spawnSync('tar', ['-t'], { input: tarBytes }).stdout.toString().trim().split('\n');
    assert.deepEqual(listed, ['etc/', 'etc/.wh.old', 'etc/patched', 'usr/lib/big'], 'tar -t of the decompressed layer');
    assert.equal((await entriesOf(written)).size, 4, 'our own reader reads it back');
  } finally {
    await builder.dispose();
  }
});

test('zstd patch layers go under OCI manifests; a Docker schema 2 image is refused with the way out', () => {
  assert.equal(patchLayerMediaType(MediaType.ociManifest, 'zstd'), MediaType.ociLayerZstd, 'OCI + zstd');
  assert.equal(patchLayerMediaType(MediaType.ociManifest), MediaType.ociLayerGzip, 'gzip by default');
  assert.equal(patchLayerMediaType(MediaType.dockerManifest, 'gzip'), MediaType.dockerLayerGzip, 'Docker + gzip');
  assert.throws(() => patchLayerMediaType(MediaType.dockerManifest, 'zstd'), (e: unknown) => e instanceof CompressionError && e.code === 'COMPRESSION_UNSUPPORTED' && e.kind === 'unsupported' && /skopeo copy --format oci/.test(e.message), 'Docker + zstd');
});

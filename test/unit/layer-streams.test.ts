import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { ImageError } from '../../src/image/errors.js';
import { forEachEntry } from '../../src/image/filesystem.js';
import { openLayerTar, type Layer } from '../../src/image/layer.js';
import { OciError } from '../../src/oci/errors.js';
import { MediaType } from '../../src/oci/media-types.js';

// A layer's streams are joined: a failure anywhere (the blob, gunzip, the tar
// parser, the entry handler) destroys everything up to the blob, and a parse
// error on bytes that do not match the layer's digest is reported as the
// digest mismatch it is.

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A gzip layer of a few incompressible files (so a flipped byte lands inside file data or headers, not in a tiny blob). */
async function gzipLayerBytes(): Promise<Buffer> {
  const pack = tar.pack();
  for (let i = 0; i < 8; i++) pack.entry({ name: `data/file-${i}`, mode: 0o644 }, randomBytes(64 * 1024));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** The blob as a registry client hands it over: small chunks, optionally failing after `failAfter` bytes; it counts what was read. */
function blobSource(bytes: Buffer, options: { failAfter?: { at: number; error: Error }; paceMs?: number } = {}): Readable & { sent: number } {
  let offset = 0;
  const next = (stream: Readable) => {
    const { failAfter } = options;
    if (failAfter && offset >= failAfter.at) { stream.destroy(failAfter.error); return; }
    if (offset >= bytes.length) { stream.push(null); return; }
    const end = Math.min(bytes.length, offset + 16 * 1024);
    stream.push(bytes.subarray(offset, end));
    source.sent = offset = end;
  };
  const source = new Readable({
    // Paced like a network: each chunk is through gunzip before the next arrives.
    read() { if (options.paceMs) setTimeout(() => next(this), options.paceMs); else next(this); },
  }) as Readable & { sent: number };
  source.sent = 0;
  return source;
}

/** What client.openBlob does to a blob: fail at the end if the bytes do not hash to the descriptor's digest. */
function verifying(digest: string): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _e, cb) { hash.update(chunk); cb(null, chunk); },
    flush(cb) {
      const actual = `sha256:${hash.digest('hex')}`;
      cb(actual === digest ? null : new OciError('BLOB_DIGEST_MISMATCH', `blob content hashes to ${actual}, expected ${digest}`));
    },
  });
}

function gzipLayer(bytes: Buffer, digest: string, open: () => Readable): Layer {
  return { mediaType: MediaType.ociLayerGzip, digest, size: bytes.length, open: async () => open() };
}

const flip = (b: Buffer, at: number) => { const c = Buffer.from(b); c[at] = c[at]! ^ 0xff; return c; };
const drain = (_header: tar.Header, body: Readable) => new Promise<void>((resolve, reject) => { body.on('end', resolve); body.on('error', reject); body.resume(); });

test('a blob failing mid-layer fails the read with its own error and leaves nothing open', async () => {
  const bytes = await gzipLayerBytes();
  const failure = new OciError('NETWORK', 'get blob: other side closed');
  const source = blobSource(bytes, { failAfter: { at: Math.floor(bytes.length / 2), error: failure } });
  const layer = gzipLayer(bytes, sha256(bytes), () => source);
  await assert.rejects(forEachEntry(await openLayerTar(layer), drain), (e) => e === failure);
  assert.equal(source.destroyed, true);
});

test('a failing entry handler destroys the blob (after reading it out, to judge it), and its error stands when the blob verifies', async () => {
  const bytes = await gzipLayerBytes();
  const source = blobSource(bytes);
  const layer = gzipLayer(bytes, sha256(bytes), () => pipeline(source, verifying(sha256(bytes)), () => {}));
  const refused = new ImageError('HARDLINK_ESCAPE', 'refused by the handler');
  await assert.rejects(forEachEntry(await openLayerTar(layer), async () => { throw refused; }), (e) => e === refused);
  assert.equal(source.destroyed, true);
  assert.equal(source.sent, bytes.length, 'the rest of the blob was read for its verifier');
});

test('a consumer that stops reading destroys the tar stream, and with it the blob', async () => {
  const bytes = await gzipLayerBytes();
  const source = blobSource(bytes);
  const tarStream = await openLayerTar(gzipLayer(bytes, sha256(bytes), () => source));
  for await (const _chunk of tarStream) break; // abandons the stream: destroy() without an error
  await new Promise((r) => setImmediate(r));
  assert.equal(source.destroyed, true);
  assert.ok(source.sent < bytes.length, 'an abandoned layer is not read to its end');
});

test('a byte flipped mid-blob is reported as the digest mismatch it is, with the parse error as its cause', async () => {
  const good = await gzipLayerBytes();
  const damaged = flip(good, Math.floor(good.length / 2));
  const digest = sha256(good);
  const source = blobSource(damaged, { paceMs: 2 });
  const layer = gzipLayer(good, digest, () => pipeline(source, verifying(digest), () => {}));
  const started = Date.now();
  await assert.rejects(forEachEntry(await openLayerTar(layer), drain), (e: unknown) => {
    assert.ok(e instanceof OciError, `got ${String(e)}`);
    assert.equal(e.code, 'BLOB_DIGEST_MISMATCH');
    assert.match(e.message, new RegExp(digest));
    assert.ok(e.cause instanceof ImageError && e.cause.code === 'LAYER_INVALID', `cause: ${String(e.cause)}`);
    return true;
  });
  assert.equal(source.destroyed, true);
  assert.equal(source.sent, damaged.length, 'the blob was read to its end for the verifier');
  assert.ok(Date.now() - started < 20_000);
});

test('a malformed layer whose bytes match its digest stays LAYER_INVALID', async () => {
  const good = await gzipLayerBytes();
  const damaged = flip(good, Math.floor(good.length / 2));
  const digest = sha256(damaged); // the registry serves exactly what the manifest names: the layer itself is bad
  const source = blobSource(damaged);
  const layer = gzipLayer(damaged, digest, () => pipeline(source, verifying(digest), () => {}));
  await assert.rejects(forEachEntry(await openLayerTar(layer), drain), (e: unknown) => e instanceof ImageError && e.code === 'LAYER_INVALID');
  assert.equal(source.destroyed, true);
});

test('gzip data that is not a tar: the tar parser fails, the layer is LAYER_INVALID, the blob is closed', async () => {
  const bytes = gzipSync(randomBytes(256 * 1024));
  const source = blobSource(bytes);
  const layer = gzipLayer(bytes, sha256(bytes), () => pipeline(source, verifying(sha256(bytes)), () => {}));
  await assert.rejects(forEachEntry(await openLayerTar(layer), drain), (e: unknown) => e instanceof ImageError && e.code === 'LAYER_INVALID' && /malformed layer tar/.test(e.message));
  assert.equal(source.destroyed, true);
});

test('a decompression bomb is refused and its blob closed', async () => {
  const bytes = gzipSync(Buffer.alloc(8 * 2 ** 20));
  const source = blobSource(bytes);
  const layer = gzipLayer(bytes, sha256(bytes), () => source);
  await assert.rejects(forEachEntry(await openLayerTar(layer, { maxBytes: 2 ** 20 }), drain), (e: unknown) => e instanceof ImageError && e.code === 'DECOMPRESSION_LIMIT');
  assert.equal(source.destroyed, true);
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { ImageError } from '../../src/image/errors.js';
import { ImageFilesystem } from '../../src/image/filesystem.js';
import type { Layer } from '../../src/image/layer.js';
import { MediaType } from '../../src/oci/media-types.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; body?: string; linkname?: string; mode?: number };

/** A gzip layer built in memory from entries written exactly as given (hostile ones included). */
async function layer(entries: Entry[]): Promise<Layer> {
  const pack = tar.pack();
  for (const e of entries) {
    const header = { name: e.name, type: e.type ?? 'file', mode: e.mode ?? 0o644, ...(e.linkname ? { linkname: e.linkname } : {}) };
    if ((e.type ?? 'file') === 'file') pack.entry(header, e.body ?? '');
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const blob = gzipSync(Buffer.concat(chunks));
  return { mediaType: MediaType.ociLayerGzip, digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`, size: blob.length, open: async () => Readable.from([blob]) };
}

const code = (c: string) => (e: unknown) => e instanceof ImageError && e.code === c;

test('whiteouts and opaque directories hide what lower layers had', async () => {
  const fs = await ImageFilesystem.load([
    await layer([{ name: 'etc/', type: 'directory' }, { name: 'etc/a', body: 'a' }, { name: 'etc/b', body: 'b' }, { name: 'opt/x/1', body: '1' }, { name: 'opt/x/2', body: '2' }]),
    await layer([{ name: 'etc/.wh.a' }, { name: 'opt/x/.wh..wh..opq' }, { name: 'opt/x/3', body: '3' }]),
  ], { capture: () => true });
  assert.deepEqual(fs.readdir('etc'), ['b']);
  assert.equal(fs.lstat('etc/a'), undefined);
  assert.deepEqual(fs.readdir('opt/x'), ['3']);
  assert.equal((await fs.readFile('opt/x/3'))?.toString(), '3');
});

test('symlinks resolve inside the image, never on the host', async () => {
  const fs = await ImageFilesystem.load([await layer([
    { name: 'usr/bin/tool', body: 'image tool' },
    { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
    { name: 'etc/shadow', body: 'image shadow' },
    { name: 'escape', type: 'symlink', linkname: '../../../../../../etc/shadow' },
    { name: 'absolute', type: 'symlink', linkname: '/etc/shadow' },
    { name: 'loop1', type: 'symlink', linkname: 'loop2' },
    { name: 'loop2', type: 'symlink', linkname: 'loop1' },
  ])]);
  assert.equal((await fs.readFile('bin/tool'))?.toString(), 'image tool');
  assert.equal((await fs.readFile('escape'))?.toString(), 'image shadow');
  assert.equal((await fs.readFile('absolute'))?.toString(), 'image shadow');
  assert.equal(fs.lstat('bin')?.type, 'symlink');
  assert.throws(() => fs.stat('loop1'), code('SYMLINK_LOOP'));
});

test('entry names escaping the root are refused', async () => {
  for (const name of ['../evil', 'a/../../evil', '/abs/../../x']) {
    await assert.rejects(ImageFilesystem.load([await layer([{ name, body: 'x' }])]), code('PATH_TRAVERSAL'), name);
  }
});

test('hard links to paths outside the layer, or not yet in it, are refused', async () => {
  await assert.rejects(ImageFilesystem.load([await layer([{ name: 'x', type: 'link', linkname: '../../etc/passwd' }])]), code('HARDLINK_ESCAPE'));
  await assert.rejects(ImageFilesystem.load([await layer([{ name: 'x', type: 'link', linkname: 'etc/passwd' }])]), code('HARDLINK_ESCAPE'));
  const ok = await ImageFilesystem.load([await layer([{ name: 'a', body: 'same' }, { name: 'b', type: 'link', linkname: 'a' }])]);
  assert.equal((await ok.readFile('b'))?.toString(), 'same');
});

test('a decompression bomb stops at the limit with a typed error', async () => {
  const bomb = await layer([{ name: 'zeros', body: '\0'.repeat(8 * 1024 * 1024) }]);
  assert.ok(bomb.size < 64 * 1024);
  await assert.rejects(ImageFilesystem.load([bomb], { limits: { maxBytes: 1024 * 1024 } }), code('DECOMPRESSION_LIMIT'));
});

test('a file not captured on the first pass is read back from its layer', async () => {
  const fs = await ImageFilesystem.load([await layer([{ name: 'big', body: 'payload' }])], { capture: () => false });
  assert.equal((await fs.readFile('big'))?.toString(), 'payload');
  assert.equal(await fs.readFile('missing'), undefined);
});

test('a non-directory replaces a directory from a lower layer, with its contents', async () => {
  const fs = await ImageFilesystem.load([
    await layer([{ name: 'd/f', body: 'x' }]),
    await layer([{ name: 'd', type: 'symlink', linkname: '/elsewhere' }]),
  ]);
  assert.equal(fs.lstat('d')?.type, 'symlink');
  assert.equal(fs.lstat('d/f'), undefined);
});

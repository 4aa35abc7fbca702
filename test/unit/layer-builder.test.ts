import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { ImageFilesystem } from '../../src/image/filesystem.js';
import { createLayerBuilder, type LayerBuilder } from '../../src/image/layer-builder.js';
import { run, tmpDir } from '../harness/tools.js';

const work = await tmpDir('patchd-layer-builder');
after(() => work.remove());
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const longName = `usr/share/${'deep/'.repeat(30)}file-with-a-long-name.txt`;

async function stageSample(builder: LayerBuilder): Promise<void> {
  builder.addDirectory('etc', { mode: 0o755 });
  await builder.addFile('etc/config', { mode: 0o640, uid: 0, gid: 42 }, Buffer.from('key=value\n'));
  await builder.addFile('usr/bin/tool', { mode: 0o4755 }, Readable.from([Buffer.alloc(3 << 20, 0xab)]));
  builder.addSymlink('usr/bin/alias', 'tool', { mode: 0o777 });
  builder.addHardlink('usr/bin/tool2', 'usr/bin/tool', { mode: 0o4755 });
  builder.addWhiteout('var/lib/old');
  builder.addOpaqueDirectory('opt/app', { mode: 0o755 });
  await builder.addFile(longName, { mode: 0o644 }, Buffer.from('long'));
}

test('the same entries give byte-identical layers, whatever order they were staged in', async () => {
  const a = createLayerBuilder({ tmpDir: work.path });
  await stageSample(a);
  const b = createLayerBuilder({ tmpDir: work.path });
  await b.addFile(longName, { mode: 0o644 }, Buffer.from('long'));
  {
    b.addOpaqueDirectory('opt/app', { mode: 0o755 });
    b.addWhiteout('var/lib/old');
    await b.addFile('usr/bin/tool', { mode: 0o4755 }, Buffer.alloc(3 << 20, 0xab));
    b.addHardlink('usr/bin/tool2', 'usr/bin/tool', { mode: 0o4755 });
    b.addSymlink('usr/bin/alias', 'tool', { mode: 0o777 });
    await b.addFile('etc/config', { mode: 0o640, uid: 0, gid: 42 }, Buffer.from('key=value\n'));
    b.addDirectory('etc', { mode: 0o755 });

  }
  const [la, lb] = [await a.write(), await b.write()];
  assert.equal(la.digest, lb.digest);
  assert.equal(la.diffId, lb.diffId);
  await a.dispose();
  await b.dispose();
});

test('digest, size and diffID are those of the bytes written, re-hashed independently', async () => {
  const builder = createLayerBuilder({ tmpDir: work.path });
  await stageSample(builder);
  const layer = await builder.write();
  const blob = await readFile(layer.path);
  assert.equal(layer.size, blob.length);
  assert.equal(layer.digest, sha(blob));
  const tarBytes = gunzipSync(blob);
  assert.equal(layer.diffId, sha(tarBytes));
  assert.equal(layer.uncompressedSize, tarBytes.length);

  // GNU tar agrees on names, types, modes, owners and links.
  const { stdout } = await run('tar', ['-tvzf', layer.path, '--numeric-owner']);
  assert.match(stdout, /^-rw-r----- 0\/42 .* etc\/config$/m);
  assert.match(stdout, /^-rwsr-xr-x 0\/0 .* usr\/bin\/tool$/m);
  assert.match(stdout, /^lrwxrwxrwx 0\/0 .* usr\/bin\/alias -> tool$/m);
  assert.match(stdout, /^hrwsr-xr-x 0\/0 .* usr\/bin\/tool2 link to usr\/bin\/tool$/m);
  assert.match(stdout, /var\/lib\/\.wh\.old$/m);
  assert.match(stdout, /opt\/app\/\.wh\.\.wh\.\.opq$/m);
  assert.ok(stdout.includes(longName), 'long names survive (PAX)');
  const names = stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(5).join(' ').split(' ')[0]!);
  assert.ok(names.indexOf('etc/') < names.indexOf('etc/config'), 'parents before children');
  await builder.dispose();
});

test('our own reader sees what the builder wrote, whiteouts applied over a base', async () => {
  const base = createLayerBuilder({ tmpDir: work.path });
  await base.addFile('var/lib/old', { mode: 0o644 }, Buffer.from('gone soon'));
  await base.addFile('opt/app/stale', { mode: 0o644 }, Buffer.from('hidden soon'));
  const top = createLayerBuilder({ tmpDir: work.path });
  await stageSample(top);
  const fs = await ImageFilesystem.load([await base.write(), await top.write()], { capture: () => true });
  assert.equal(fs.lstat('var/lib/old'), undefined);
  assert.deepEqual(fs.readdir('opt/app'), []);
  assert.equal((await fs.readFile('usr/bin/alias'))?.length, 3 << 20);
  assert.equal(fs.lstat('etc/config')?.gid, 42);
  await base.dispose();
  await top.dispose();
});

test('a read-back sees the tar bytes as they are written; its failure fails the write, and one that stops early holds nothing up', async () => {
  const builder = createLayerBuilder({ tmpDir: work.path });
  await stageSample(builder);
  let seen = Buffer.alloc(0);
  const written = await builder.write({ readBack: async (tar) => { const chunks: Buffer[] = []; for await (const c of tar) chunks.push(c as Buffer); seen = Buffer.concat(chunks); } });
  assert.equal(sha(seen), written.diffId, 'the read-back got exactly the uncompressed tar (its sha256 is the diffID)');
  assert.equal(seen.length, written.uncompressedSize, 'all of it');

  const failing = createLayerBuilder({ tmpDir: work.path });
  await stageSample(failing);
  await assert.rejects(failing.write({ readBack: async (tar) => { for await (const _ of tar) throw new Error('the check said no'); } }), /the check said no/, 'a failed read-back fails the write');

  const early = createLayerBuilder({ tmpDir: work.path });
  await stageSample(early);
  const done = await early.write({ readBack: async () => { /* reads nothing */ } });
  assert.equal(done.diffId, written.diffId, 'a read-back that reads nothing does not stop the layer being written whole');
});

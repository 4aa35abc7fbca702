import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ImageFilesystem } from '../../src/image/filesystem.js';
import type { Layer } from '../../src/image/layer.js';
import { answersSame, recordReads } from '../../src/image/read-record.js';
import { createScanCache } from '../../src/scan/scan-cache.js';
import { scanLayers } from '../../src/scan/scan.js';
import { layerFromEntries } from '../harness/layers.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink'; body?: string; linkname?: string; mode?: number };
let layers = 0;

/** A layer built in memory (a name of its own stands for its digest); `opened` counts how often it was read. */
async function layer(entries: Entry[]): Promise<Layer & { opened: number }> {
  const built = await layerFromEntries(entries.map((e) => ((e.type ?? 'file') === 'file'
    ? { path: e.name, content: e.body ?? '', ...(e.mode !== undefined ? { mode: e.mode } : {}) }
    : { path: e.name, type: e.type as 'directory' | 'symlink', ...(e.linkname ? { linkname: e.linkname } : {}) })), `scan-reuse-${++layers}`);
  const counted = { ...built, opened: 0, open: async () => { counted.opened++; return built.open(); } };
  return counted;
}

const dpkgStatus = (version: string) => `Package: libfoo1\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nSource: foo\nVersion: ${version}\nDescription: foo\n\n`;
const osRelease = 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n';

const base = await layer([
  { name: 'etc/', type: 'directory' }, { name: 'etc/os-release', body: osRelease }, { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
  { name: 'usr/lib/libfoo.so.1', body: 'elf' }, { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
  { name: 'var/lib/dpkg/status', body: dpkgStatus('1.0-1') },
]);
const dirs = await mkdtemp(join(tmpdir(), 'patchd-scan-reuse-'));
after(() => rm(dirs, { recursive: true, force: true }));

test('a build that read only what two images share answers the same on both; a changed read, symlink or listing does not', async () => {
  const appA = await layer([{ name: 'app/', type: 'directory' }, { name: 'app/main.js', body: 'a' }]);
  const appB = await layer([{ name: 'app/', type: 'directory' }, { name: 'app/main.js', body: 'b' }, { name: 'etc/', type: 'directory', mode: 0o700 }]);
  const recorder = recordReads(await ImageFilesystem.load([base, appA], { capture: (p) => p.startsWith('etc/') }));
  assert.equal((await recorder.fs.readFile('etc/passwd'))?.toString(), 'root:x:0:0::/root:/bin/sh\n', 'reads go through to the view');
  recorder.fs.lstat('lib/libfoo.so.1');
  await recorder.fs.readFile('lib/libfoo.so.1');
  const reads = recorder.reads();
  assert.deepEqual(reads.map((r) => `${r.op} ${r.path}`).sort(), ['lstat lib/libfoo.so.1', 'readFile etc/passwd', 'readFile lib/libfoo.so.1'], 'each distinct read is recorded once');

  // Another app layer (and another mode on etc/, which nothing read) answers the same.
  assert.ok(answersSame(await ImageFilesystem.load([base, appB], { capture: (p) => p.startsWith('etc/') }), reads), 'an image that differs only where nothing was read answers the same');
  const changed = [
    [{ name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/bash\n' }],             // content of a file read
    [{ name: 'usr/lib/libfoo.so.1', body: 'elf', mode: 0o755 }],               // metadata of a path looked at
    [{ name: 'lib', type: 'symlink' as const, linkname: 'opt/lib' }, { name: 'opt/lib/libfoo.so.1', body: 'elf' }], // a symlink on the way
    [{ name: 'etc/.wh.passwd' }],                                              // a whiteout
  ];
  for (const entries of changed) {
    const fs = await ImageFilesystem.load([base, await layer(entries)], { capture: (p) => p.startsWith('etc/') });
    assert.equal(answersSame(fs, reads), false, `a top layer with ${entries.map((e) => e.name).join(', ')} must not answer the same`);
  }

  const listing = recordReads(await ImageFilesystem.load([base]));
  listing.fs.readdir('usr/lib');
  const withSibling = await ImageFilesystem.load([base, await layer([{ name: 'usr/lib/libbar.so.2', body: 'x' }])]);
  assert.equal(answersSame(withSibling, listing.reads()), false, 'a directory listing that gained a name must not answer the same');
});

test('a cached scan reads only the layers after the longest prefix it has seen, and finds what an uncached scan finds', async () => {
  const store = createScanCache({ dir: join(dirs, 'scans-1') });
  const top1 = await layer([{ name: 'app/one', body: '1' }]);
  const top2 = await layer([{ name: 'app/two', body: '2' }, { name: 'var/lib/dpkg/status', body: dpkgStatus('1.0-2') }]);
  const cache = { store, capture: 'etc' };
  const capture = (p: string) => p.startsWith('etc/');
  await scanLayers([base, top1], { capture, cache });
  const opensBefore = base.opened;
  const cached = await scanLayers([base, top2], { capture, cache });
  assert.equal(base.opened, opensBefore, 'the shared base layer is not read again');
  assert.equal(top2.opened, 1, 'the new top layer is read');
  const fresh = await scanLayers([base, top2], { capture });
  assert.deepEqual(cached.inventory, fresh.inventory, 'the cached scan finds the same packages (the top layer\'s dpkg status wins)');
  assert.equal(cached.inventory.packages.find((p) => p.name === 'libfoo1')?.version, '1.0-2', 'the newer record is the one kept');
  assert.deepEqual(cached.fs.entries(), fresh.fs.entries(), 'the merged view is the same');
  assert.equal((await cached.fs.readFile('etc/passwd'))?.toString(), 'root:x:0:0::/root:/bin/sh\n', 'captured files come along');

  // Another process: the snapshot comes from disk.
  const other = createScanCache({ dir: join(dirs, 'scans-1') });
  const opens = base.opened;
  const fromDisk = await scanLayers([base, top1], { capture, cache: { store: other, capture: 'etc' } });
  assert.equal(base.opened, opens, 'a second process reads the snapshot from the cache dir, not the layer');
  assert.deepEqual(fromDisk.inventory, (await scanLayers([base, top1], { capture })).inventory, 'and finds the same');

  // Custom decompression limits are always checked against the layers themselves.
  const strict = base.opened;
  await scanLayers([base, top1], { capture, cache, limits: { maxBytes: 2 ** 30 } });
  assert.equal(base.opened, strict + 1, 'a scan with its own limits reads every layer');
});

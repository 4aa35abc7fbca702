import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseRpmHeader } from '../../src/distro/rpm/header.js';
import { scanLayers } from '../../src/scan/scan.js';
import { appLayersDir } from '../harness/fixture-image.js';
import { layerFromEntries, type TarEntry } from '../harness/layers.js';
import { run } from '../harness/tools.js';

// Hostile package records: every reader sees seeded, mutated copies of real
// records (truncated, bit-flipped, spliced). The scan must finish, with
// warnings at worst, never a crash or a hang. Bounded: 400 images, seeded.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

function mutate(input: Buffer, random: () => number): Buffer {
  const b = Buffer.from(input);
  switch (Math.floor(random() * 4)) {
    case 0: return b.subarray(0, Math.floor(random() * b.length));
    case 1: for (let i = 0; i < 1 + random() * 16; i++) { const at = Math.floor(random() * b.length); b[at] = (b[at] ?? 0) ^ (1 << Math.floor(random() * 8)); } return b;
    case 2: { const at = Math.floor(random() * b.length); return Buffer.concat([b.subarray(0, at), b.subarray(Math.floor(random() * b.length))]); }
    default: { const at = Math.floor(random() * b.length); b.fill(0xff, at, Math.min(b.length, at + 64)); return b; }
  }
}

test('mutated rpm databases, Go binaries, deps.json, METADATA and package.json never crash the scan', { timeout: 10 * 60_000 }, async () => {
  const dir = await appLayersDir();
  const pick = async (tar: string, path: string) => Buffer.from((await run('sh', ['-c', `tar -xOf '${join(dir, tar)}' '${path}' | base64 -w0`])).stdout, 'base64');
  const seeds: { path: string; content: Buffer; mode?: number }[] = [
    { path: 'var/lib/rpm/rpmdb.sqlite', content: await pick('rpm.tar', './var/lib/rpm/rpmdb.sqlite') },
    { path: 'var/lib/rpm/Packages', content: await pick('rpm-bdb.tar', './var/lib/rpm/Packages') },
    { path: 'usr/local/bin/hello', content: await pick('go.tar', './usr/local/bin/hello'), mode: 0o755 },
    { path: 'app/demo.deps.json', content: await readFile(new URL('../../fixtures/inventory/dotnet/app/demo.deps.json', import.meta.url)) },
    { path: 'usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO', content: await pick('python.tar', './usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO') },
    { path: 'srv/app/node_modules/lodash/package.json', content: await pick('node.tar', './srv/app/node_modules/lodash/package.json') },
    { path: 'lib/apk/db/installed', content: await readFile(new URL('../../fixtures/inventory/alpine/lib/apk/db/installed', import.meta.url)) },
  ];
  const random = rng(0x5eed);
  let warnings = 0;
  let packages = 0;
  for (let round = 0; round < 400; round++) {
    const entries: TarEntry[] = seeds.map((s) => ({ path: s.path, content: mutate(s.content, random), ...(s.mode ? { mode: s.mode } : {}) }));
    const { inventory } = await scanLayers([await layerFromEntries(entries, `round-${round}`)]);
    warnings += inventory.warnings.length;
    packages += inventory.packages.length;
    for (const p of inventory.packages) assert.ok(p.name.length > 0 && typeof p.version === 'string', JSON.stringify(p));
  }
  // The mutations were noticed (warnings), and intact parts still yielded packages.
  assert.ok(warnings > 100, `${warnings} warnings`);
  assert.ok(packages > 100, `${packages} packages`);
});

test('rpm headers that lie about their sizes are refused, not read past their end', () => {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x7fffffff, 0);
  header.writeUInt32BE(0x7fffffff, 4);
  assert.throws(() => parseRpmHeader(header), /runs past the blob/);
  assert.throws(() => parseRpmHeader(Buffer.alloc(4)), /shorter than its preamble/);
  const empty = Buffer.alloc(8);
  assert.throws(() => parseRpmHeader(empty), /lacks name, version or release/);
});

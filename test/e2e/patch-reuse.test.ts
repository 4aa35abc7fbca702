import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// The patch layer cache (src/pipeline/patch-layer-cache.ts): a second image
// on the same base, with its own app layer, gets the layer the first build
// made without unpacking anything; an image whose own layer changes what the
// build reads (the ca-certificates selection) is built afresh, and its layer
// is the one a build with empty caches makes.

const repoRoot = new URL('../..', import.meta.url).pathname;
const patchd = join(repoRoot, 'bin/patchd.js');
let registry: RunningRegistry;
let work: TempDir;
let fixture: string;

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-e2e-reuse');
  fixture = await bookwormRootfsTar();
});

after(async () => {
  await registry?.stop();
  await work?.remove();
});

/** The fixture plus one layer holding `files` (path → content), pushed as reuse/app:<tag>. */
async function pushWith(tag: string, files: Record<string, string>): Promise<string> {
  const root = join(work.path, `layer-${tag}`);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
  const layer = join(work.path, `layer-${tag}.tar`);
  await run('tar', ['--numeric-owner', '-C', root, '-cf', layer, '.']);
  await pushRootfsImage({ tarPath: fixture, registryHost: registry.host, repository: 'reuse/app', tag, extraLayers: [layer] });
  return `${registry.host}/reuse/app:${tag}`;
}

/** Runs `patchd patch` and returns its progress events and the patch layer (the last layer of the result). */
async function patch(image: string, cacheDir: string, target = `${image.split(':').at(-1)}-patched`): Promise<{ events: { stage: string; phase?: string; detail?: string }[]; layer: string }> {
  const result = await run('node', [patchd, 'patch', '-i', image, '-t', target, '--cache-dir', cacheDir, '--progress', 'rawjson'], { cwd: repoRoot });
  const events = result.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { stage: string; phase?: string; detail?: string }).filter((e) => e.stage);
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image.slice(0, image.lastIndexOf(':'))}:${target}`])).stdout) as { layers: { digest: string }[] };
  return { events, layer: manifest.layers.at(-1)!.digest };
}

const unpacked = (events: { stage: string; phase?: string }[]) => events.filter((e) => e.stage === 'package' && e.phase === 'unpack').length;
const reused = (events: { stage: string; detail?: string }[]) => events.some((e) => e.stage === 'build' && e.detail?.startsWith('reused '));

test('a new app layer on the same base reuses the patch layer; a layer that changes what the build reads does not', { timeout: 10 * 60_000 }, async () => {
  const cache = join(work.path, 'cache');
  const first = await patch(await pushWith('a', { 'app/main.js': 'console.log("a")\n' }), cache);
  assert.ok(unpacked(first.events) > 0, `the first image is built (unpack events): ${JSON.stringify(first.events.slice(0, 8))}`);
  assert.ok(!reused(first.events), 'nothing to reuse yet');

  const second = await patch(await pushWith('b', { 'app/main.js': 'console.log("b")\n', 'etc/app.conf': 'port=8080\n' }), cache);
  assert.ok(reused(second.events), `the second image reuses the layer: ${JSON.stringify(second.events)}`);
  assert.equal(unpacked(second.events), 0, 'and unpacks nothing');
  assert.equal(second.layer, first.layer, 'its patched image carries the same patch layer');

  // Deselecting a certificate changes the ca-certificates bundle the build writes.
  const conf = (await run('tar', ['-xOf', fixture, './etc/ca-certificates.conf'])).stdout;
  const lines = conf.split('\n');
  const firstCert = lines.findIndex((l) => l.endsWith('.crt') && !l.startsWith('!') && !l.startsWith('#'));
  assert.ok(firstCert >= 0, 'the fixture selects certificates in etc/ca-certificates.conf');
  lines[firstCert] = `!${lines[firstCert]}`;
  const third = await patch(await pushWith('c', { 'etc/ca-certificates.conf': lines.join('\n') }), cache);
  assert.ok(!reused(third.events) && unpacked(third.events) > 0, `an image whose ca-certificates.conf differs is built afresh: ${JSON.stringify(third.events.filter((e) => e.stage === 'build'))}`);
  assert.notEqual(third.layer, first.layer, 'and gets a layer of its own');
  // A tag of its own: under c-patched it would find that patch already there and push nothing.
  const fresh = await patch(`${registry.host}/reuse/app:c`, join(work.path, 'cache-empty'), 'c-fresh');
  assert.ok(unpacked(fresh.events) > 0, 'the empty-cache build really builds');
  assert.equal(fresh.layer, third.layer, 'the same layer a build with empty caches makes for it');
});

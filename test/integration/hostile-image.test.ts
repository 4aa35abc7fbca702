import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// Hostile layers in an image being patched: the job fails with a clear reason,
// nothing is pushed, and nothing outside the image is touched.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let work: TempDir;

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-hostile');
});
after(async () => {
  await registry?.stop();
  await work?.remove();
});

async function hostileTar(name: string, entries: { name: string; type?: 'file' | 'link' | 'symlink'; linkname?: string }[]): Promise<string> {
  const path = join(work.path, `${name}.tar`);
  const pack = tar.pack();
  pack.entry({ name: 'etc/os-release', mode: 0o644 }, 'ID=debian\n');
  for (const e of entries) {
    if ((e.type ?? 'file') === 'file') pack.entry({ name: e.name, mode: 0o644 }, 'x');
    else pack.entry({ name: e.name, type: e.type!, linkname: e.linkname ?? '' });
  }
  pack.finalize();
  await pipeline(pack, createWriteStream(path));
  return path;
}

for (const [name, entries, code] of [
  ['traversal', [{ name: '../../../tmp/patchd-owned' }], 'PATH_TRAVERSAL'],
  ['hardlink-escape', [{ name: 'etc/passwd-link', type: 'link', linkname: '../../etc/passwd' }], 'HARDLINK_ESCAPE'],
] as const) {
  test(`an image with a ${name} entry fails with ${code}, pushes nothing`, async () => {
    const tarPath = await hostileTar(name, [...entries]);
    await pushRootfsImage({ tarPath, registryHost: registry.host, repository: `hostile/${name}`, tag: 'main' });
    const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${registry.host}/hostile/${name}:main`, '--cache-dir', join(work.path, 'cache')], { allowFailure: true });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`\\[${code}\\]`));
    const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/hostile/${name}`]);
    assert.deepEqual(JSON.parse(stdout).Tags, ['main']);
  });
}

test('an image without a dpkg database is reported as not patchable, exit 0, nothing pushed', async () => {
  const tarPath = await hostileTar('plain', [{ name: 'usr/bin/app' }]);
  await pushRootfsImage({ tarPath, registryHost: registry.host, repository: 'plain/app', tag: 'main' });
  const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${registry.host}/plain/app:main`, '--cache-dir', join(work.path, 'cache')], { allowFailure: true });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /skipped: no dpkg or rpm database/);
  assert.match(result.stdout, /nothing patched in /);
});

import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// Every byte patchd installs is checked: InRelease against the image's own
// keyring, Packages against InRelease, each .deb against Packages. A local
// mirror on loopback passes the real archive through, and corrupts one kind
// of file per run; the patch must fail with the matching code and push nothing.

const repoRoot = new URL('../..', import.meta.url).pathname;
type Corrupt = 'none' | 'inrelease' | 'packages' | 'deb';
let corrupt: Corrupt = 'none';
let mirror: Server;
let registry: RunningRegistry;
let work: TempDir;
let image: string;

const flip = (b: Buffer, at: number) => { const c = Buffer.from(b); c[at] = c[at]! ^ 0x01; return c; };

before(async () => {
  work = await tmpDir('patchd-apt-verification');
  const tar = await bookwormRootfsTar();
  const upstream = (await readFile(join(dirname(tar), 'mirror'), 'utf8')).trim().replace(/\/debian$/, '');
  const port = await freePort();
  mirror = createServer(async (req, res) => {
    try {
      const up = await request(`${upstream}${req.url}`, { method: 'GET' });
      let body = Buffer.from(await up.body.arrayBuffer());
      const url = req.url ?? '';
      if (up.statusCode === 200) {
        if (corrupt === 'inrelease' && url.endsWith('/InRelease')) body = Buffer.from(body.toString('utf8').replace('Origin: Debian', 'Origin: Debiam'));
        if (corrupt === 'packages' && (url.endsWith('/Packages.xz') || url.includes('/by-hash/SHA256/'))) body = flip(body, Math.floor(body.length / 2));
        if (corrupt === 'deb' && url.endsWith('.deb')) body = flip(body, body.length - 1);
      }
      res.writeHead(up.statusCode, { 'content-length': String(body.length) });
      res.end(body);
    } catch (error) {
      res.writeHead(502);
      res.end(String(error));
    }
  });
  await new Promise<void>((r) => mirror.listen(port, '127.0.0.1', r));

  // The fixture, with its apt sources pointing at the local mirror (a later tar entry wins).
  const overlay = join(work.path, 'overlay');
  await mkdir(join(overlay, 'etc/apt/sources.list.d'), { recursive: true });
  await writeFile(join(overlay, 'etc/apt/sources.list.d/debian.sources'), [
    'Types: deb', `URIs: http://127.0.0.1:${port}/debian`, 'Suites: bookworm bookworm-updates', 'Components: main', 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', '',
    'Types: deb', `URIs: http://127.0.0.1:${port}/debian-security`, 'Suites: bookworm-security', 'Components: main', 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg', '',
  ].join('\n'));
  const rootfs = join(work.path, 'rootfs.tar');
  await copyFile(tar, rootfs);
  await run('tar', ['-rf', rootfs, '--owner=0', '--group=0', '-C', overlay, './etc/apt/sources.list.d/debian.sources']);
  registry = await startRegistry();
  await pushRootfsImage({ tarPath: rootfs, registryHost: registry.host, repository: 'fixtures/mirrored', tag: 'main' });
  image = `${registry.host}/fixtures/mirrored:main`;
});

after(async () => {
  mirror?.close();
  await registry?.stop();
  await work?.remove();
});

async function patch(mode: Corrupt, dryRun: boolean) {
  corrupt = mode;
  const cache = join(work.path, `cache-${mode}-${dryRun}`); // cold: nothing may come from an earlier run
  return run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '--cache-dir', cache, ...(dryRun ? ['--dry-run'] : [])], { allowFailure: true });
}

async function tags(): Promise<string[]> {
  const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/mirrored`]);
  return (JSON.parse(stdout) as { Tags: string[] }).Tags;
}

test('through the untouched mirror the plan is made (the mirror itself works)', async () => {
  const result = await patch('none', true);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /tzdata .* -> /);
});

for (const [mode, code] of [['inrelease', 'RELEASE_SIGNATURE_INVALID'], ['packages', 'INDEX_HASH_MISMATCH'], ['deb', 'DEB_HASH_MISMATCH']] as const) {
  test(`a tampered ${mode} fails with ${code} and nothing is pushed`, async () => {
    const result = await patch(mode, false);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(code));
    assert.deepEqual(await tags(), ['main']);
  });
}

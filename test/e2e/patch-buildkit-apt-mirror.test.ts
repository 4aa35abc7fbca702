import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { aptUpgradedRoot } from '../harness/oracle.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';
import { compareTrees, volatilePaths } from '../harness/tree-compare.js';

// --executor buildkit through an apt mirror: BuildKit's apt-get is pointed at
// a deb822 copy of the image's sources with the mirror's URIs (a read-only
// mount, for its runs only), so every index and package comes from the
// loopback mirror, and the layer still equals apt-get upgrade.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let mirror: Server;
let port: number;
let upstream: string;
let work: TempDir;
const upstreamAgent = new Agent({ connections: 8 });
const requested: string[] = [];

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  requested.push(url);
  if (!url.startsWith('/m/')) { res.writeHead(404).end(); return; }
  const up = await request(`${upstream}${url.slice('/m'.length)}`, { method: 'GET', dispatcher: upstreamAgent });
  const headers: Record<string, string> = {};
  for (const name of ['content-type', 'content-length', 'last-modified', 'etag']) if (typeof up.headers[name] === 'string') headers[name] = up.headers[name] as string;
  res.writeHead(up.statusCode, headers);
  await pipeline(up.body, res);
}

before(async () => {
  work = await tmpDir('patchd-buildkit-apt-mirror');
  const tar = await bookwormRootfsTar();
  upstream = (await readFile(join(dirname(tar), 'mirror'), 'utf8')).trim().replace(/\/debian$/, '');
  port = await freePort();
  mirror = createServer((req, res) => { serve(req, res).catch((error: unknown) => { if (!res.headersSent) res.writeHead(502).end(String(error)); else res.destroy(); }); });
  await new Promise<void>((r) => mirror.listen(port, '127.0.0.1', r));
  [registry, buildkitd] = await Promise.all([startRegistry(), startBuildkitd()]);
  await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' });
});

after(async () => {
  if (mirror) await new Promise<void>((r) => { mirror.closeAllConnections(); mirror.close(() => r()); });
  await upstreamAgent.close();
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  await work?.remove();
});

test('--executor buildkit --apt-mirror: everything from the mirror, equal to apt-get upgrade, the image\'s sources unchanged', { timeout: 30 * 60_000 }, async () => {
  const image = `${registry.host}/fixtures/bookworm:main`;
  const flags = ['debian', 'debian-security'].flatMap((a) => ['--apt-mirror', `${upstream}/${a}=http://127.0.0.1:${port}/m/${a}`]);
  const patch = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '--executor', 'buildkit', '--buildkit-addr', buildkitd.address, ...flags, '--cache-dir', join(work.path, 'cache')], { allowFailure: true });
  assert.equal(patch.code, 0, patch.stderr.slice(-4000));
  assert.match(patch.stdout, /patched .* -> .*:main-patched \(sha256:[0-9a-f]{64}\)/);
  // BuildKit's apt-get fetched through the mirror too: its own InRelease requests and every .deb.
  const debs = requested.filter((p) => p.endsWith('.deb'));
  const planned = patch.stdout.split('\n').filter((l) => / -> \S+ {2}\(/.test(l) && !l.startsWith('patched'));
  assert.ok(new Set(debs).size >= planned.length && planned.length > 0, `.debs from the mirror: ${debs.length} for ${planned.length} planned`);
  assert.ok(requested.filter((p) => p === '/m/debian/dists/bookworm/InRelease').length >= 2, 'patchd\'s planner and BuildKit\'s apt-get update both asked the mirror');

  const layout = join(work.path, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${layout}:patched`]);
  const bundle = join(work.path, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:patched`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  const oracle = await aptUpgradedRoot();
  const differences = await compareTrees(rootfs, oracle.upgradedRoot, { ignore: volatilePaths });
  assert.deepEqual(differences, [], `differs from apt-get upgrade:\n${differences.slice(0, 40).map((d) => JSON.stringify(d)).join('\n')}`);
  for (const name of await readdir(join(oracle.originalRoot, 'etc/apt/sources.list.d'))) {
    assert.ok((await readFile(join(rootfs, 'etc/apt/sources.list.d', name))).equals(await readFile(join(oracle.originalRoot, 'etc/apt/sources.list.d', name))), `${name} unchanged`);
  }
  assert.deepEqual((await readdir(join(rootfs, 'run'))).filter((n) => n.startsWith('patchd')), [], 'the mirrored sources mount leaves nothing behind');
});

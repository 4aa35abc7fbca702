import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { aptUpgradedRoot } from '../harness/oracle.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';
import { compareTrees, volatilePaths } from '../harness/tree-compare.js';

// Registry policy mirrors, end to end: the bookworm fixture (its sources name
// deb.debian.org) is patched with every apt request sent to a loopback mirror
// of the Debian archive under another URL prefix, which streams from the
// machine's own Debian mirror and wants Basic credentials. The result must
// equal apt-get upgrade file for file, the image's sources files must be
// byte-identical, and a mirror serving a forged InRelease must be refused.

const repoRoot = new URL('../..', import.meta.url).pathname;
const username = 'mirror-user';
const password = `pw-${randomUUID()}`;
const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

interface Seen { readonly path: string; readonly status: number; readonly authorized: boolean }
let seen: Seen[] = [];
let mirror: Server;
let port: number;
let upstream: string;
const upstreamAgent = new Agent({ connections: 8 });
let registry: RunningRegistry;
let work: TempDir;
let image: string;

/**
 * /auth/<path>: wants the credentials; /tampered/<path>: no credentials, and
 * InRelease altered after signing. Everything else streams from upstream.
 */
async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const m = /^\/(auth|tampered)(\/.*)$/.exec(url);
  if (!m) { res.writeHead(404).end(); return; }
  const [, mode, rest] = m;
  const authorized = req.headers.authorization === basic;
  if (mode === 'auth' && !authorized) {
    seen.push({ path: url, status: 401, authorized });
    res.writeHead(401, { 'www-authenticate': 'Basic realm="mirror"' }).end();
    return;
  }
  const up = await request(`${upstream}${rest}`, { method: 'GET', dispatcher: upstreamAgent });
  seen.push({ path: url, status: up.statusCode, authorized });
  const headers: Record<string, string> = {};
  for (const name of ['content-type', 'last-modified', 'etag']) if (typeof up.headers[name] === 'string') headers[name] = up.headers[name] as string;
  if (mode === 'tampered' && up.statusCode === 200 && rest!.endsWith('/InRelease')) {
    const forged = Buffer.from((await up.body.text()).replace('Origin: Debian', 'Origin: Debiam'));
    res.writeHead(200, { ...headers, 'content-length': String(forged.length) }).end(forged);
    return;
  }
  if (typeof up.headers['content-length'] === 'string') headers['content-length'] = up.headers['content-length'];
  res.writeHead(up.statusCode, headers);
  await pipeline(up.body, res);
}

before(async () => {
  work = await tmpDir('patchd-apt-mirror');
  const tar = await bookwormRootfsTar();
  // The fixture's sources name this mirror (…/debian and …/debian-security); the loopback one serves the same files under /auth/….
  upstream = (await readFile(join(dirname(tar), 'mirror'), 'utf8')).trim().replace(/\/debian$/, '');
  port = await freePort();
  mirror = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => { if (!res.headersSent) res.writeHead(502).end(String(error)); else res.destroy(); });
  });
  await new Promise<void>((r) => mirror.listen(port, '127.0.0.1', r));
  registry = await startRegistry();
  await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' });
  image = `${registry.host}/fixtures/bookworm:main`;
});

after(async () => {
  await new Promise<void>((r) => { mirror?.closeAllConnections(); mirror?.close(() => r()); if (!mirror) r(); });
  await upstreamAgent.close();
  await registry?.stop();
  await work?.remove();
});

function mirrorFlags(prefix: 'auth' | 'tampered'): string[] {
  return ['debian', 'debian-security'].flatMap((archive) => ['--apt-mirror', `${upstream}/${archive}=http://127.0.0.1:${port}/${prefix}/${archive}`]);
}

async function patch(args: readonly string[], env: Record<string, string> = {}) {
  return run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '--log-level', 'debug', ...args], {
    allowFailure: true, timeoutMs: 15 * 60_000, env: { ...process.env, PATCHD_APT_USERNAME: '', PATCHD_APT_PASSWORD: '', ...env },
  });
}

async function tags(): Promise<string[]> {
  const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/bookworm`]);
  return (JSON.parse(stdout) as { Tags: string[] }).Tags.sort();
}

/** Every etc/apt/sources.list* file under `root`, path → bytes. */
async function aptSources(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const etcApt = join(root, 'etc/apt');
  for (const name of await readdir(etcApt)) {
    if (!name.startsWith('sources.list')) continue;
    const path = join(etcApt, name);
    if (name === 'sources.list.d') {
      for (const inner of await readdir(path)) out.set(`sources.list.d/${inner}`, await readFile(join(path, inner)));
    } else {
      out.set(name, await readFile(path));
    }
  }
  return out;
}

test('the mirror wants credentials: a request without them gets 401', async () => {
  const res = await request(`http://127.0.0.1:${port}/auth/debian/dists/bookworm/InRelease`);
  await res.body.dump();
  assert.equal(res.statusCode, 401);
});

test('patched through a mirror with credentials: equal to apt-get upgrade, sources files unchanged, the password never logged', { timeout: 25 * 60_000 }, async () => {
  seen = [];
  const result = await patch([...mirrorFlags('auth'), '--cache-dir', join(work.path, 'cache-auth')], { PATCHD_APT_USERNAME: username, PATCHD_APT_PASSWORD: password });
  assert.equal(result.code, 0, result.stderr.slice(-4000));
  assert.match(result.stdout, /patched .* -> .*:main-patched \(sha256:[0-9a-f]{64}\)/);

  // Everything came through the mirror, every request with the credentials.
  assert.deepEqual(seen.filter((s) => !s.authorized), [], 'patchd sent the credentials with every request');
  const inRelease = seen.filter((s) => s.path.endsWith('/InRelease'));
  assert.deepEqual([...new Set(inRelease.map((s) => s.path))].sort(), [
    '/auth/debian-security/dists/bookworm-security/InRelease', '/auth/debian/dists/bookworm-updates/InRelease', '/auth/debian/dists/bookworm/InRelease',
  ]);
  assert.ok(seen.some((s) => /\/binary-amd64\/(Packages\.xz|by-hash\/SHA256\/[0-9a-f]{64})$/.test(s.path)), 'Packages indexes from the mirror');
  const debs = seen.filter((s) => s.path.endsWith('.deb'));
  const planned = result.stdout.split('\n').filter((l) => / -> \S+ {2}\(/.test(l) && !l.startsWith('patched'));
  const fetched = new Set(debs.map((d) => d.path)).size;
  assert.ok(fetched > 0 && fetched === planned.length, `one .deb from the mirror per planned package (${fetched} for ${planned.length})`);
  assert.ok(debs.every((d) => d.status === 200 && d.path.startsWith('/auth/debian')));

  // Logs at debug level name the mirror but never the secret.
  assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}/auth/debian`));
  for (const secret of [password, basic.slice('Basic '.length)]) {
    assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), 'no log line carries the credentials');
  }

  // The result, unpacked by umoci, against the same root upgraded by apt-get.
  const layout = join(work.path, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${layout}:patched`]);
  const bundle = join(work.path, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:patched`, bundle]);
  const oracle = await aptUpgradedRoot();
  const differences = await compareTrees(join(bundle, 'rootfs'), oracle.upgradedRoot, { ignore: volatilePaths });
  assert.deepEqual(differences, [], `patched root differs from apt-get upgrade:\n${differences.slice(0, 40).map((d) => JSON.stringify(d)).join('\n')}`);

  // The image keeps its own sources: the mirror was for the fetch only.
  const original = await aptSources(oracle.originalRoot);
  const patched = await aptSources(join(bundle, 'rootfs'));
  assert.ok(original.size > 0);
  assert.deepEqual([...patched.keys()].sort(), [...original.keys()].sort());
  for (const [path, bytes] of original) assert.ok(patched.get(path)!.equals(bytes), `${path} is byte-identical`);
  assert.doesNotMatch(patched.get('sources.list.d/debian.sources')?.toString() ?? '', /127\.0\.0\.1/);
});

test('without the credentials the mirror refuses patchd, which fails naming the 401 and pushes nothing', { timeout: 5 * 60_000 }, async () => {
  const before = await tags();
  const result = await patch([...mirrorFlags('auth'), '--cache-dir', join(work.path, 'cache-none'), '--tag', 'no-credentials']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /RELEASE_INVALID/);
  assert.match(result.stderr, /HTTP 401: credentials are needed/);
  assert.deepEqual(await tags(), before);
});

test('a mirror serving a forged InRelease is refused with RELEASE_SIGNATURE_INVALID, even with a warm cache from the good one; nothing is pushed', { timeout: 5 * 60_000 }, async () => {
  const before = await tags();
  seen = [];
  // The cache the good mirror filled: its InRelease must not stand in for the forged one.
  const result = await patch([...mirrorFlags('tampered'), '--cache-dir', join(work.path, 'cache-auth'), '--tag', 'forged']);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /RELEASE_SIGNATURE_INVALID/);
  assert.ok(seen.some((s) => s.path.startsWith('/tampered/') && s.path.endsWith('/InRelease')), 'the forged InRelease was fetched, not taken from the cache');
  assert.equal(seen.filter((s) => s.path.endsWith('.deb')).length, 0);
  assert.deepEqual(await tags(), before);
});

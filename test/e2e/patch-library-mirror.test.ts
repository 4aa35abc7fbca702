import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { downloadVerified, releaseFiles } from '../../src/executors/python/package-index.js';
import { httpLibraryIndex, LibraryIndexError, type PackageIndex } from '../../src/plan/library-index.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// Library indexes per policy: a loopback proxy in front of the real PyPI and
// npm registry stands for a private mirror, and wants credentials (Basic for
// PyPI, a bearer token for npm). The planner's version checks and the
// executors' downloads go there, with the credentials, and nowhere else.

const repoRoot = new URL('../..', import.meta.url).pathname;
const pypiUser = 'pypi-reader';
const pypiPassword = `pw-${randomUUID()}`;
const npmToken = `npm_${randomUUID().replace(/-/g, '')}`;
const pypiAuth = `Basic ${Buffer.from(`${pypiUser}:${pypiPassword}`).toString('base64')}`;

interface Seen { readonly path: string; readonly status: number }
let seen: Seen[] = [];
let mirror: Server;
let base: string;
const upstreamAgent = new Agent({ connections: 8 });
let registry: RunningRegistry;
let work: TempDir;

async function proxy(res: ServerResponse, url: string, accept: string | undefined, rewrite?: (text: string) => string): Promise<number> {
  const up = await request(url, { method: 'GET', dispatcher: upstreamAgent, headers: { 'user-agent': 'patchd-test-mirror', ...(accept ? { accept } : {}) } });
  if (rewrite && up.statusCode === 200) {
    const text = rewrite(await up.body.text());
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text);
    return 200;
  }
  const headers: Record<string, string> = {};
  for (const name of ['content-type', 'content-length', 'location']) if (typeof up.headers[name] === 'string') headers[name] = up.headers[name] as string;
  res.writeHead(up.statusCode, headers);
  await pipeline(up.body, res);
  return up.statusCode;
}

/** /pypi/... (JSON API, file URLs rewritten to /pypi-files/...) and /pypi-files/... want Basic; /npm/... wants the token. */
async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const deny = (status: number) => { seen.push({ path: url, status }); res.writeHead(status).end(); };
  if (url.startsWith('/pypi/') || url.startsWith('/pypi-files/')) {
    if (req.headers.authorization !== pypiAuth) return deny(401);
    const status = url.startsWith('/pypi/')
      ? await proxy(res, `https://pypi.org${url}`, 'application/json', (text) => text.replaceAll('https://files.pythonhosted.org/', `${base}/pypi-files/`))
      : await proxy(res, `https://files.pythonhosted.org/${url.slice('/pypi-files/'.length)}`, undefined);
    seen.push({ path: url, status });
    return;
  }
  if (url.startsWith('/npm/')) {
    if (req.headers.authorization !== `Bearer ${npmToken}`) return deny(401);
    const status = await proxy(res, `https://registry.npmjs.org/${url.slice('/npm/'.length)}`, req.headers.accept);
    seen.push({ path: url, status });
    return;
  }
  deny(404);
}

before(async () => {
  work = await tmpDir('patchd-library-mirror');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  mirror = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => { if (!res.headersSent) res.writeHead(502).end(String(error)); else res.destroy(); });
  });
  await new Promise<void>((r) => mirror.listen(port, '127.0.0.1', r));
});

after(async () => {
  if (mirror) await new Promise<void>((r) => { mirror.closeAllConnections(); mirror.close(() => r()); });
  await upstreamAgent.close();
  await registry?.stop();
  await work?.remove();
});

const pypi = (): PackageIndex => ({ url: `${base}/pypi`, credentials: { username: pypiUser, password: pypiPassword } });

test('the planner asks the PyPI mirror, with its credentials, once per package', async () => {
  seen = [];
  const index = httpLibraryIndex({ indexes: { pypi: pypi() } });
  const urllib3 = await index.versions('pypi', 'urllib3');
  assert.ok(urllib3.versions.includes('1.26.5') && urllib3.versions.includes('2.0.7'));
  assert.equal(urllib3.source, `${base}/pypi/urllib3/json`);
  await index.versions('pypi', 'urllib3');
  assert.deepEqual(seen, [{ path: '/pypi/urllib3/json', status: 200 }], 'one authorized request; the second answer came from the cache');

  // Refused credentials: a typed error that names the index, never the password.
  const wrong = httpLibraryIndex({ indexes: { pypi: { url: `${base}/pypi`, credentials: { username: pypiUser, password: 'not-it' } } } });
  await assert.rejects(wrong.versions('pypi', 'urllib3'), (error: unknown) => {
    assert.ok(error instanceof LibraryIndexError && error.code === 'INDEX_UNREACHABLE' && error.kind === 'upstream');
    assert.match(error.message, /HTTP 401 \(the credentials were refused\)/);
    assert.ok(!error.message.includes(pypiPassword) && !error.message.includes('not-it'));
    return true;
  });
});

test('a wheel downloaded through the PyPI mirror (file URLs on the mirror get the credentials) and checked against its sha256', async () => {
  seen = [];
  const release = await releaseFiles(pypi(), 'six', '1.16.0', new Agent());
  const wheel = release.files.find((f) => f.filename === 'six-1.16.0-py2.py3-none-any.whl')!;
  assert.ok(wheel.url.startsWith(`${base}/pypi-files/`));
  const dest = join(work.path, wheel.filename);
  const bytes = await downloadVerified(pypi(), wheel, dest, new Agent());
  assert.equal(bytes, (await readFile(dest)).length);
  assert.ok(seen.some((s) => s.path.startsWith('/pypi/six/') && s.status === 200));
  assert.ok(seen.some((s) => s.path.endsWith('/six-1.16.0-py2.py3-none-any.whl') && s.status === 200));
  assert.ok(seen.every((s) => s.status !== 401), 'every request carried the credentials');
});

test('patchd patch --npm-registry: versions checked and tarballs fetched on the mirror with the token (from the environment), never logged', { timeout: 15 * 60_000 }, async () => {
  registry = await startRegistry();
  const appTar = (await run('bash', [join(repoRoot, 'test/fixtures/build-node-app.sh')])).stdout.trim().split('\n').at(-1)!;
  await pushRootfsImage({ tarPath: await bookwormRootfsTar(), extraLayers: [appTar], registryHost: registry.host, repository: 'fixtures/node', tag: 'v1' });
  const image = `${registry.host}/fixtures/node:v1`;
  seen = [];
  const result = await run('node', [
    join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '--advisories', join(repoRoot, 'fixtures/osv'), '--pkg-types', 'library', '--library-patch-level', 'minor',
    '--npm-registry', `${base}/npm`, '--cache-dir', join(work.path, 'cache'), '--log-level', 'debug',
  ], { allowFailure: true, env: { ...process.env, PATCHD_ADVISORIES: '', PATCHD_NPM_TOKEN: npmToken } });
  assert.equal(result.code, 0, result.stderr.slice(-4000));
  assert.match(result.stdout, /^minimist \(npm, srv\/app\) 0\.0\.8 -> 0\.2\.4 /m);
  assert.match(result.stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);

  assert.deepEqual(seen.filter((s) => s.status === 401), [], 'every request carried the token');
  const paths = seen.map((s) => s.path);
  assert.ok(paths.includes('/npm/minimist') && paths.includes('/npm/lodash'), `the planner's version checks went to the mirror: ${paths.join(' ')}`);
  assert.ok(paths.includes('/npm/minimist/-/minimist-0.2.4.tgz'), `the fixed tarball came from the mirror: ${paths.join(' ')}`);
  for (const secret of [npmToken]) assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), 'the token is never logged');

  // Without the token, the mirror's refusal is reported and nothing is pushed.
  seen = [];
  const refused = await run('node', [
    join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '--advisories', join(repoRoot, 'fixtures/osv'), '--pkg-types', 'library', '--library-patch-level', 'minor',
    '--npm-registry', `${base}/npm`, '--cache-dir', join(work.path, 'cache'), '-t', 'no-token',
  ], { allowFailure: true, env: { ...process.env, PATCHD_ADVISORIES: '', PATCHD_NPM_TOKEN: '' } });
  assert.ok(seen.some((s) => s.status === 401));
  assert.doesNotMatch(refused.stdout, /patched .* -> .*:no-token/);
  const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/node`])).stdout) as { Tags: string[] };
  assert.ok(!tags.Tags.includes('no-token'));
});

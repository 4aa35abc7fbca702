import assert from 'node:assert/strict';
import { createHash, createSign, generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Agent } from 'undici';
import { createRegistryClient, type RegistryClient } from '../../src/oci/client.js';
import { OciError } from '../../src/oci/errors.js';
import { staticKeychain } from '../../src/oci/keychain.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { silentLogger } from '../../src/lib/log.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// The client against a real CNCF distribution registry; small node:http
// servers in front of it play the parts a plain registry cannot (token
// service, redirects to another host, throttling, corrupt bytes).

const dispatcher = new Agent();
const logger = silentLogger();
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function pushImage(client: RegistryClient, ref: string, mediaType: string = MediaType.ociManifest) {
  const r = parseReference(ref);
  const layer = Buffer.from(`layer of ${ref} ${Math.random()}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
  await client.pushBlob(r, { digest: sha(layer), size: layer.length }, async () => Readable.from([layer]));
  await client.pushBlob(r, { digest: sha(config), size: config.length }, async () => Readable.from([config]));
  const docker = mediaType === MediaType.dockerManifest;
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType,
    config: { mediaType: docker ? MediaType.dockerConfig : MediaType.ociConfig, digest: sha(config), size: config.length },
    layers: [{ mediaType: docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip, digest: sha(layer), size: layer.length }],
  }));
  const digest = await client.putManifest(r, manifest, mediaType);
  return { layer, config, manifest, digest };
}

describe('against a plain registry', () => {
  let registry: RunningRegistry;
  let client: RegistryClient;
  before(async () => {
    registry = await startRegistry();
    client = createRegistryClient({ logger, dispatcher });
  });
  after(() => registry.stop());

  test('manifests of both families round-trip with their media types and digests', async () => {
    for (const mediaType of [MediaType.ociManifest, MediaType.dockerManifest]) {
      const ref = `${registry.host}/round/trip:${mediaType === MediaType.ociManifest ? 'oci' : 'docker'}`;
      const pushed = await pushImage(client, ref, mediaType);
      assert.equal(pushed.digest, sha(pushed.manifest));
      const got = await client.getManifest(parseReference(ref));
      assert.equal(got.mediaType, mediaType);
      assert.equal(got.digest, pushed.digest);
      assert.deepEqual(got.bytes, pushed.manifest);
      const head = await client.headManifest(parseReference(ref));
      assert.equal(head?.digest, pushed.digest);
      const byDigest = await client.getManifest(parseReference(`${registry.host}/round/trip@${pushed.digest}`));
      assert.deepEqual(byDigest.bytes, pushed.manifest);
    }
    assert.equal(await client.headManifest(parseReference(`${registry.host}/round/trip:absent`)), undefined);
    await assert.rejects(client.getManifest(parseReference(`${registry.host}/round/trip:absent`)), (e: OciError) => e.code === 'MANIFEST_UNKNOWN');
  });

  test('blobs: upload, skip when present, cross-repository mount, verified download', async () => {
    const blob = Buffer.from('x'.repeat(10_000));
    const desc = { digest: sha(blob), size: blob.length };
    const a = parseReference(`${registry.host}/blobs/a:x`);
    const b = parseReference(`${registry.host}/blobs/b:x`);
    assert.equal(await client.pushBlob(a, desc, async () => Readable.from([blob])), 'uploaded');
    assert.equal(await client.pushBlob(a, desc, async () => { throw new Error('must not reopen'); }), 'exists');
    assert.equal(await client.pushBlob(b, desc, async () => { throw new Error('must mount'); }, { mountFrom: 'blobs/a' }), 'mounted');
    assert.deepEqual(await readAll(await client.openBlob(b, desc)), blob);
    assert.deepEqual(await client.listTags(a), []);
  });

  test('chunked uploads send Content-Range pieces and land the same blob', async () => {
    const chunkedClient = createRegistryClient({ logger, dispatcher, chunkSize: 1000 });
    const blob = Buffer.alloc(4321, 7);
    const desc = { digest: sha(blob), size: blob.length };
    const repo = parseReference(`${registry.host}/blobs/chunked:x`);
    assert.equal(await chunkedClient.pushBlob(repo, desc, async () => Readable.from([blob])), 'uploaded');
    assert.deepEqual(await readAll(await client.openBlob(repo, desc)), blob);
  });

  test('a blob whose bytes do not match its descriptor fails the stream with a typed error', async () => {
    const blob = Buffer.from('genuine');
    const repo = parseReference(`${registry.host}/blobs/verify:x`);
    await client.pushBlob(repo, { digest: sha(blob), size: blob.length }, async () => Readable.from([blob]));
    await assert.rejects(readAll(await client.openBlob(repo, { digest: sha(blob), size: blob.length + 1 })), (e: OciError) => e.code === 'BLOB_SIZE_MISMATCH');
  });
});

describe('against a registry with htpasswd (Basic) auth', () => {
  let registry: RunningRegistry;
  before(async () => { registry = await startRegistry({ htpasswd: { username: 'ci', password: 's3cret' } }); });
  after(() => registry.stop());

  test('credentials from the keychain are used; none means UNAUTHORIZED', async () => {
    const client = createRegistryClient({ logger, dispatcher, keychain: staticKeychain({ [registry.host]: { username: 'ci', password: 's3cret' } }) });
    const pushed = await pushImage(client, `${registry.host}/private/app:v1`);
    assert.equal((await client.getManifest(parseReference(`${registry.host}/private/app:v1`))).digest, pushed.digest);
    const anonymous = createRegistryClient({ logger, dispatcher });
    await assert.rejects(anonymous.getManifest(parseReference(`${registry.host}/private/app:v1`)), (e: OciError) => e.code === 'UNAUTHORIZED');
  });
});

describe('against a registry with token (Bearer) auth', () => {
  let registry: RunningRegistry;
  let tokenServer: Server;
  let work: TempDir;
  let tokenRequests: { authorization?: string; scopes: string[] }[] = [];

  before(async () => {
    work = await tmpDir('patchd-token');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(join(work.path, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await run('openssl', ['req', '-x509', '-new', '-key', join(work.path, 'key.pem'), '-subj', '/CN=patchd-test-token', '-days', '2', '-out', join(work.path, 'cert.pem')]);
    const certB64 = (await run('sh', ['-c', `openssl x509 -in ${join(work.path, 'cert.pem')} -outform DER | base64 -w0`])).stdout.trim();
    const tokenPort = await freePort();
    const realm = `http://127.0.0.1:${tokenPort}/token`;
    tokenServer = createServer((req, res) => {
      const url = new URL(req.url ?? '/', realm);
      const scopes = url.searchParams.getAll('scope');
      tokenRequests.push({ ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), scopes });
      if (req.headers.authorization !== `Basic ${Buffer.from('robot:t0ken').toString('base64')}`) { res.statusCode = 401; res.end(); return; }
      const access = scopes.flatMap((s) => {
        const [type, name, actions] = s.split(':');
        return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const head = b64({ alg: 'RS256', typ: 'JWT', x5c: [certB64] });
      const body = b64({ iss: 'patchd-test-issuer', sub: 'robot', aud: 'patchd-test', exp: now + 300, nbf: now - 10, iat: now, jti: String(Math.random()), access });
      const signature = createSign('RSA-SHA256').update(`${head}.${body}`).sign(privateKey).toString('base64url');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ token: `${head}.${body}.${signature}`, expires_in: 300 }));
    });
    await new Promise<void>((r) => tokenServer.listen(tokenPort, '127.0.0.1', r));
    registry = await startRegistry({ token: { realm, service: 'patchd-test', issuer: 'patchd-test-issuer', rootCertBundle: join(work.path, 'cert.pem') } });
  });
  after(async () => {
    await registry?.stop();
    tokenServer?.close();
    await work?.remove();
  });

  test('follows the Bearer challenge, fetches tokens by GET with Basic credentials, caches them per scope', async () => {
    tokenRequests = [];
    const client = createRegistryClient({ logger, dispatcher, keychain: staticKeychain({ [registry.host]: { username: 'robot', password: 't0ken' } }) });
    const pushed = await pushImage(client, `${registry.host}/tok/app:v1`);
    const pushTokens = tokenRequests.length;
    for (let i = 0; i < 3; i++) assert.equal((await client.getManifest(parseReference(`${registry.host}/tok/app:v1`))).digest, pushed.digest);
    assert.ok(tokenRequests.length - pushTokens <= 1, `cached token reused (fetched ${tokenRequests.length - pushTokens} more)`);
    assert.ok(tokenRequests.every((t) => t.authorization?.startsWith('Basic ')));
    assert.ok(tokenRequests.some((t) => t.scopes.includes('repository:tok/app:pull,push')));
  });

  test('wrong credentials surface as an authentication error, not a crash', async () => {
    const client = createRegistryClient({ logger, dispatcher, keychain: staticKeychain({ [registry.host]: { username: 'robot', password: 'wrong' } }) });
    await assert.rejects(client.getManifest(parseReference(`${registry.host}/tok/app:v1`)), (e: OciError) => e.code === 'AUTH_FAILED');
  });
});

describe('through a front server (redirects, throttling, corruption)', () => {
  let registry: RunningRegistry;
  let front: Server;
  let storage: Server;
  let frontHost: string;
  let mode: 'redirect' | 'corrupt' | 'throttle' | 'flaky' = 'redirect';
  let storageAuth: (string | undefined)[] = [];
  let throttled = 0;
  let failures = 0;

  const proxy = (req: IncomingMessage, res: ServerResponse, rewrite?: (body: Buffer) => Buffer) => {
    const upstream = httpRequest({ host: '127.0.0.1', port: Number(registry.host.split(':')[1]), path: req.url, method: req.method, headers: { ...req.headers, host: registry.host } }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        let body: Buffer = Buffer.concat(chunks);
        if (rewrite) body = rewrite(body);
        const headers = { ...up.headers, 'content-length': String(body.length) };
        res.writeHead(up.statusCode ?? 502, headers);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
    req.pipe(upstream);
  };

  before(async () => {
    registry = await startRegistry();
    const storagePort = await freePort();
    storage = createServer((req, res) => { storageAuth.push(req.headers.authorization); proxy(req, res); });
    await new Promise<void>((r) => storage.listen(storagePort, '127.0.0.2', r));
    const frontPort = await freePort();
    frontHost = `127.0.0.1:${frontPort}`;
    front = createServer((req, res) => {
      const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
      if (mode === 'redirect' && isBlobGet) {
        res.writeHead(307, { location: `http://127.0.0.2:${storagePort}${req.url}` });
        res.end();
        return;
      }
      if (mode === 'corrupt' && isBlobGet) return proxy(req, res, (b) => { const c = Buffer.from(b); if (c.length) c[0] = c[0]! ^ 0xff; return c; });
      if (mode === 'throttle' && throttled < 2 && req.url?.includes('/manifests/')) {
        throttled++;
        res.writeHead(429, { 'retry-after': '0' });
        res.end();
        return;
      }
      if (mode === 'flaky' && failures < 2 && req.url?.includes('/manifests/')) {
        failures++;
        res.writeHead(503);
        res.end();
        return;
      }
      proxy(req, res);
    });
    await new Promise<void>((r) => front.listen(frontPort, '127.0.0.1', r));
  });
  after(async () => {
    front?.close();
    storage?.close();
    await registry?.stop();
  });

  test('blob redirects to another host are followed without forwarding Authorization', async () => {
    const client = createRegistryClient({ logger, dispatcher, keychain: staticKeychain({ [frontHost]: { registryToken: 'secret-token' } }) });
    mode = 'redirect';
    const pushed = await pushImage(createRegistryClient({ logger, dispatcher }), `${frontHost}/redir/app:v1`);
    storageAuth = [];
    const got = await readAll(await client.openBlob(parseReference(`${frontHost}/redir/app:v1`), { digest: sha(pushed.layer), size: pushed.layer.length }));
    assert.deepEqual(got, pushed.layer);
    assert.ok(storageAuth.length >= 1, 'the redirect was followed');
    assert.deepEqual(storageAuth.filter(Boolean), [], 'no Authorization sent to the storage host');
  });

  test('corrupted blob bytes fail with BLOB_DIGEST_MISMATCH', async () => {
    mode = 'redirect';
    const client = createRegistryClient({ logger, dispatcher });
    const pushed = await pushImage(client, `${frontHost}/corrupt/app:v1`);
    mode = 'corrupt';
    await assert.rejects(readAll(await client.openBlob(parseReference(`${frontHost}/corrupt/app:v1`), { digest: sha(pushed.layer), size: pushed.layer.length })),
      (e: OciError) => e.code === 'BLOB_DIGEST_MISMATCH');
  });

  test('429 with Retry-After and 5xx are retried, then succeed', async () => {
    mode = 'redirect';
    const client = createRegistryClient({ logger, dispatcher, retry: { baseDelayMs: 10 } });
    const pushed = await pushImage(client, `${frontHost}/retry/app:v1`);
    mode = 'throttle';
    throttled = 0;
    assert.equal((await client.getManifest(parseReference(`${frontHost}/retry/app:v1`))).digest, pushed.digest);
    assert.equal(throttled, 2);
    mode = 'flaky';
    failures = 0;
    assert.equal((await client.getManifest(parseReference(`${frontHost}/retry/app:v1`))).digest, pushed.digest);
    assert.equal(failures, 2);
  });
});

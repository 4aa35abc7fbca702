import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Agent } from 'undici';
import { createRegistryClient, type RegistryClient, type RegistryClientOptions } from '../../src/oci/client.js';
import { OciError } from '../../src/oci/errors.js';
import { staticKeychain } from '../../src/oci/keychain.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { silentLogger } from '../../src/lib/log.js';
import { startFaultProxy, type Fault, type FaultProxy, type ProxiedRequest } from '../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startTokenServer, type TokenServer } from '../harness/token-server.js';
import { freePort } from '../harness/tools.js';

// The client against a real CNCF distribution registry; a token service
// (test/harness/token-server.ts), small node:http servers and the fault proxy
// in front of it play the parts a plain registry cannot (redirects to another
// host, throttling, corrupt bytes, cut connections, lost answers, stalls).

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
  let tokenServer: TokenServer;
  const tokenRequests = () => tokenServer.requests;

  before(async () => {
    tokenServer = await startTokenServer({ users: { robot: 't0ken' } });
    registry = await startRegistry({ token: tokenServer.registryAuth() });
  });
  after(async () => {
    await registry?.stop();
    await tokenServer?.stop();
  });

  test('follows the Bearer challenge, fetches tokens by GET with Basic credentials, caches them per scope', async () => {
    tokenServer.clear();
    const client = createRegistryClient({ logger, dispatcher, keychain: staticKeychain({ [registry.host]: { username: 'robot', password: 't0ken' } }) });
    const pushed = await pushImage(client, `${registry.host}/tok/app:v1`);
    const pushTokens = tokenRequests().length;
    for (let i = 0; i < 3; i++) assert.equal((await client.getManifest(parseReference(`${registry.host}/tok/app:v1`))).digest, pushed.digest);
    assert.ok(tokenRequests().length - pushTokens <= 1, `cached token reused (fetched ${tokenRequests().length - pushTokens} more)`);
    assert.ok(tokenRequests().every((t) => t.authorization?.startsWith('Basic ')));
    assert.ok(tokenRequests().some((t) => t.scopes.includes('repository:tok/app:pull,push')));
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
  let mode: 'redirect' | 'corrupt' | 'throttle' | 'flaky' | 'ignore-range' = 'redirect';
  let rangesAsked: (string | undefined)[] = [];
  let storageAuth: (string | undefined)[] = [];
  let throttled = 0;
  let failures = 0;

  const proxy = (req: IncomingMessage, res: ServerResponse, rewrite?: (body: Buffer) => Buffer, cutAt?: number) => {
    const upstream = httpRequest({ host: '127.0.0.1', port: Number(registry.host.split(':')[1]), path: req.url, method: req.method, headers: { ...req.headers, host: registry.host } }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        let body: Buffer = Buffer.concat(chunks);
        if (rewrite) body = rewrite(body);
        const headers = { ...up.headers, 'content-length': String(body.length) };
        res.writeHead(up.statusCode ?? 502, headers);
        if (cutAt !== undefined) { res.write(body.subarray(0, cutAt), () => res.socket?.destroy()); return; }
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
      if (mode === 'ignore-range' && isBlobGet) {
        // The first answer breaks off; the registry then answers every Range request with all of the blob.
        rangesAsked.push(req.headers.range);
        if (rangesAsked.length === 1) return proxy(req, res, undefined, 3000);
        delete req.headers.range;
        return proxy(req, res);
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

  test('a resumed blob download answered with 200 instead of 206 skips the bytes already passed on', async () => {
    mode = 'redirect';
    const client = createRegistryClient({ logger, dispatcher, retry: { baseDelayMs: 10 } });
    const layer = Buffer.from(Array.from({ length: 20_000 }, (_, i) => i % 251));
    const desc = { digest: sha(layer), size: layer.length };
    await client.pushBlob(parseReference(`${frontHost}/norange/app:v1`), desc, async () => Readable.from([layer]));
    mode = 'ignore-range';
    rangesAsked = [];
    assert.deepEqual(await readAll(await client.openBlob(parseReference(`${frontHost}/norange/app:v1`), desc)), layer);
    assert.equal(rangesAsked.length, 2);
    assert.equal(rangesAsked[0], undefined);
    assert.match(String(rangesAsked[1]), /^bytes=[1-9]\d*-$/);
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

describe('through the fault proxy (cut, lost, stalled and throttled answers)', () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;
  const direct = () => createRegistryClient({ logger, dispatcher });
  const faulty = (options: Partial<RegistryClientOptions> = {}) => createRegistryClient({ logger, dispatcher, retry: { baseDelayMs: 20 }, ...options });
  /** Applies `fault` to the first request `matches` picks, and to no other. */
  const once = (matches: (req: ProxiedRequest) => boolean, fault: Fault) => {
    let used = false;
    proxy.setPlan((req) => { if (used || !matches(req)) return undefined; used = true; return fault; });
  };
  /** What the proxy saw from `index` on, a new client's ping (GET /v2/) left out. */
  const since = (index: number) => proxy.log.filter((r) => r.index >= index && r.path !== '/v2/');
  const randomBlob = (size: number) => { const b = Buffer.alloc(size); for (let i = 0; i < size; i += 4) b.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i); return b; };

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy({ target: registry.url });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  test('a connection cut mid manifest body retries the whole operation', async () => {
    const pushed = await pushImage(direct(), `${registry.host}/faults/manifest:v1`);
    const start = proxy.log.length;
    once((r) => r.method === 'GET' && r.path.includes('/manifests/'), { kind: 'cut', afterBytes: 40 });
    const got = await faulty().getManifest(parseReference(`${proxy.host}/faults/manifest:v1`));
    assert.deepEqual(got.bytes, pushed.manifest);
    const gets = since(start).filter((r) => r.method === 'GET' && r.path.includes('/manifests/'));
    assert.deepEqual(gets.map((r) => r.fault), ['cut', undefined]);
  });

  test('a connection cut mid blob body resumes with a Range request and the bytes verify', async () => {
    const blob = randomBlob(2_000_000);
    const desc = { digest: sha(blob), size: blob.length };
    await direct().pushBlob(parseReference(`${registry.host}/faults/blob:x`), desc, async () => Readable.from([blob]));
    const start = proxy.log.length;
    once((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'), { kind: 'cut', afterBytes: 700_000 });
    assert.deepEqual(await readAll(await faulty().openBlob(parseReference(`${proxy.host}/faults/blob:x`), desc)), blob);
    const gets = since(start).filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
    assert.equal(gets.length, 2, JSON.stringify(gets.map((r) => [r.path, r.headers.range])));
    assert.equal(gets[0]!.headers.range, undefined);
    assert.match(String(gets[1]!.headers.range), /^bytes=[1-9]\d*-$/, 'the second GET asks for the rest only');
  });

  test('a body that keeps breaking off fails the stream with NETWORK naming the digest after the attempts', async () => {
    const blob = randomBlob(300_000);
    const desc = { digest: sha(blob), size: blob.length };
    await direct().pushBlob(parseReference(`${registry.host}/faults/broken:x`), desc, async () => Readable.from([blob]));
    let cuts = 0;
    proxy.setPlan((r) => r.method === 'GET' && r.path.includes(desc.digest) ? (cuts++, { kind: 'cut', afterBytes: 50_000 }) : undefined);
    const stream = await faulty({ retry: { attempts: 3, baseDelayMs: 10 } }).openBlob(parseReference(`${proxy.host}/faults/broken:x`), desc);
    await assert.rejects(readAll(stream), (e: OciError) => e.code === 'NETWORK' && e.message.includes(desc.digest));
    assert.equal(cuts, 3);
    proxy.setPlan(() => undefined);
  });

  test('destroying the returned blob stream ends the HTTP request', async () => {
    const blob = randomBlob(8_000_000);
    const desc = { digest: sha(blob), size: blob.length };
    await direct().pushBlob(parseReference(`${registry.host}/faults/destroy:x`), desc, async () => Readable.from([blob]));
    const own = new Agent();
    try {
      const client = createRegistryClient({ logger, dispatcher: own });
      const running = () => Object.values(own.stats).reduce((n, s) => n + s.running, 0);
      for (const readFirst of [true, false]) {
        const stream = await client.openBlob(parseReference(`${proxy.host}/faults/destroy:x`), desc);
        if (readFirst) await new Promise((r) => stream.once('data', r));
        stream.destroy();
        for (let i = 0; i < 100 && running() > 0; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(running(), 0, `no request left running (${readFirst ? 'destroyed mid-read' : 'destroyed unread'})`);
      }
    } finally {
      await own.close();
    }
  });

  test('a lost answer to the PUT completing an upload: the blob is looked up, not PUT again to the used-up URL', async () => {
    const blob = randomBlob(100_000);
    const desc = { digest: sha(blob), size: blob.length };
    const start = proxy.log.length;
    once((r) => r.method === 'PUT' && r.path.includes('digest='), { kind: 'lose-response' });
    let opened = 0;
    assert.equal(await faulty().pushBlob(parseReference(`${proxy.host}/faults/upload:x`), desc, async () => { opened++; return Readable.from([blob]); }), 'uploaded');
    const seen = since(start);
    const puts = seen.filter((r) => r.method === 'PUT');
    assert.deepEqual(puts.map((r) => r.fault), ['lose-response'], 'one PUT, the one whose answer was lost');
    assert.deepEqual(seen.map((r) => r.method), ['HEAD', 'POST', 'PUT', 'HEAD']);
    assert.equal(opened, 1);
    assert.equal(await direct().hasBlob(parseReference(`${registry.host}/faults/upload:x`), desc.digest), true);
  });

  test('a lost answer to a chunked PATCH restarts the upload from a new POST with a fresh stream', async () => {
    const blob = randomBlob(5000);
    const desc = { digest: sha(blob), size: blob.length };
    const start = proxy.log.length;
    once((r) => r.method === 'PATCH', { kind: 'lose-response' });
    let opened = 0;
    assert.equal(await faulty({ chunkSize: 2000 }).pushBlob(parseReference(`${proxy.host}/faults/chunked:x`), desc, async () => { opened++; return Readable.from([blob]); }), 'uploaded');
    const seen = since(start);
    assert.equal(seen.filter((r) => r.method === 'POST').length, 2);
    assert.equal(opened, 2);
    const uploadPaths = seen.filter((r) => r.method === 'PATCH' || r.method === 'PUT').map((r) => r.path.split('?')[0]);
    assert.equal(new Set(uploadPaths).size, 2, 'the second attempt used its own upload URL');
    assert.deepEqual(await readAll(await direct().openBlob(parseReference(`${registry.host}/faults/chunked:x`), desc)), blob);
  });

  test('a lost answer to a manifest PUT ends as success once HEAD shows the digest', async () => {
    const client = faulty();
    const pushed = await pushImage(direct(), `${registry.host}/faults/put:base`);
    const start = proxy.log.length;
    once((r) => r.method === 'PUT' && r.path.includes('/manifests/'), { kind: 'lose-response' });
    const digest = await client.putManifest(parseReference(`${proxy.host}/faults/put:v2`), pushed.manifest, MediaType.ociManifest);
    assert.equal(digest, pushed.digest);
    const seen = since(start);
    assert.deepEqual(seen.map((r) => `${r.method}${r.fault ? ` ${r.fault}` : ''}`), ['PUT lose-response', 'HEAD']);
    assert.equal((await direct().headManifest(parseReference(`${registry.host}/faults/put:v2`)))?.digest, pushed.digest);
  });

  test('a stall that never ends fails with NETWORK within the configured timeout', async () => {
    await pushImage(direct(), `${registry.host}/faults/stall:v1`);
    proxy.setPlan((r) => r.path.includes('/manifests/') ? { kind: 'stall', ms: 600_000 } : undefined);
    const client = faulty({ timeouts: { headersMs: 300, bodyMs: 300 }, retry: { attempts: 2, baseDelayMs: 10 } });
    const started = Date.now();
    await assert.rejects(client.getManifest(parseReference(`${proxy.host}/faults/stall:v1`)),
      (e: OciError) => e.code === 'NETWORK' && /get manifest .*faults\/stall:v1/.test(e.message));
    const elapsed = Date.now() - started;
    // Two attempts of a 300 ms timeout (undici's timers are coarse); far below the 30 s default.
    assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    proxy.setPlan(() => undefined);
  });

  test('429 with Retry-After is honoured; 503 with a registry error body is retried', async () => {
    const pushed = await pushImage(direct(), `${registry.host}/faults/throttle:v1`);
    const client = faulty();
    const ref = parseReference(`${proxy.host}/faults/throttle:v1`);
    await client.headManifest(ref); // ping done: only the GETs below are timed
    once((r) => r.method === 'GET' && r.path.includes('/manifests/'), { kind: 'status', status: 429, headers: { 'retry-after': '1' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' });
    const started = Date.now();
    assert.equal((await client.getManifest(ref)).digest, pushed.digest);
    assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started} ms, not the 1 s Retry-After`);
    once((r) => r.method === 'GET' && r.path.includes('/manifests/'), { kind: 'status', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}' });
    assert.equal((await client.getManifest(ref)).digest, pushed.digest);
    const last = proxy.log.slice(-2);
    assert.deepEqual(last.map((r) => r.fault), ['status', undefined]);
  });

  test('a registry that disappears is NETWORK, typed and naming the operation', async () => {
    const gone = await startFaultProxy({ target: registry.url });
    await gone.disappear();
    await assert.rejects(faulty({ retry: { attempts: 2, baseDelayMs: 10 } }).listTags(parseReference(`${gone.host}/faults/x:y`)),
      (e: unknown) => e instanceof OciError && e.code === 'NETWORK' && e.transient && e.message.startsWith('list tags of'));
    await gone.stop();
  });
});

describe('token auth through the fault proxy', () => {
  let registry: RunningRegistry;
  let tokenServer: TokenServer;
  let tokenProxy: FaultProxy;

  before(async () => {
    tokenServer = await startTokenServer({ users: { robot: 't0ken' } });
    tokenProxy = await startFaultProxy({ target: tokenServer.url });
    registry = await startRegistry({ token: tokenServer.registryAuth(`${tokenProxy.url}/token`) });
  });
  after(async () => {
    await registry?.stop();
    await tokenProxy?.stop();
    await tokenServer?.stop();
  });

  test('a token response cut mid body retries the operation; the token is then cached', async () => {
    const keychain = staticKeychain({ [registry.host]: { username: 'robot', password: 't0ken' } });
    const pushed = await pushImage(createRegistryClient({ logger, dispatcher, keychain }), `${registry.host}/tok/cut:v1`);
    tokenServer.clear();
    let cut = false;
    tokenProxy.setPlan(() => { if (cut) return undefined; cut = true; return { kind: 'cut', afterBytes: 30 }; });
    const client = createRegistryClient({ logger, dispatcher, keychain, retry: { baseDelayMs: 10 } });
    for (let i = 0; i < 3; i++) assert.equal((await client.getManifest(parseReference(`${registry.host}/tok/cut:v1`))).digest, pushed.digest);
    assert.equal(tokenServer.requests.length, 2, 'the cut token request and its retry, then the cache');
  });
});

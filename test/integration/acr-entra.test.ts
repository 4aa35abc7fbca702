import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Agent } from 'undici';
import { acrEntraKeychain, jwtExpiry } from '../../src/oci/acr.js';
import { createRegistryClient, type RegistryClient } from '../../src/oci/client.js';
import { OciError } from '../../src/oci/errors.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/lib/log.js';
import { connectRegistries } from '../../src/worker.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startTokenServer, type TokenServer } from '../harness/token-server.js';
import { tmpDir, type TempDir } from '../harness/tools.js';

// ACR's Entra (AAD) protocol against a loopback stand-in: one node:http server
// plays the Entra token endpoint, ACR's /oauth2/exchange and /oauth2/token
// (whose access tokens the harness token server signs), and proxies /v2/ to
// a real docker-registry whose token realm is that /oauth2/token, as ACR's is.

const dispatcher = new Agent();
const tenant = 'tenant-0000';
const clientId = 'client-1111';
const federated = `federated-${randomBytes(12).toString('hex')}`;
const clientSecret = `secret-${randomBytes(12).toString('hex')}`;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const fakeJwt = (claims: object) => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.sig`;

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function answer(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('ACR with Microsoft Entra credentials', () => {
  let registry: RunningRegistry;
  let tokenServer: TokenServer;
  let acr: Server;
  let acrHost: string;
  let acrUrl: string;
  let work: TempDir;
  let goodFile: string;
  let wrongFile: string;
  const seen = { entra: 0, exchange: 0, token: 0, scopes: new Set<string>() };
  const secretsIssued: string[] = [federated, clientSecret];
  let rejectExchange = false;

  async function standIn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://acr.invalid').pathname;
    if (req.method === 'POST' && path === `/${tenant}/oauth2/v2.0/token`) {
      seen.entra++;
      const f = await readForm(req);
      const shapeOk = f.get('client_id') === clientId && f.get('scope') === 'https://containerregistry.azure.net/.default' && f.get('grant_type') === 'client_credentials';
      const byAssertion = f.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' && f.get('client_assertion') === federated;
      const bySecret = f.get('client_secret') === clientSecret;
      // Entra's descriptions may quote what was sent: the client must not pass them on.
      if (!shapeOk || !(byAssertion || bySecret)) return answer(res, 401, { error: 'invalid_client', error_description: `AADSTS700211: assertion ${f.get('client_assertion')} rejected` });
      const token = `entra-${randomBytes(16).toString('hex')}`;
      secretsIssued.push(token);
      return answer(res, 200, { token_type: 'Bearer', expires_in: 3599, access_token: token });
    }
    if (req.method === 'POST' && path === '/oauth2/exchange') {
      seen.exchange++;
      const f = await readForm(req);
      const ok = f.get('grant_type') === 'access_token' && f.get('service') === acrHost && f.get('tenant') === tenant && secretsIssued.includes(f.get('access_token') ?? '') && f.get('access_token')!.startsWith('entra-');
      if (!ok || rejectExchange) return answer(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'access token rejected' }] });
      const refresh = fakeJwt({ aud: acrHost, tenant, exp: Math.floor(Date.now() / 1000) + 3 * 3600, jti: randomBytes(8).toString('hex') });
      secretsIssued.push(refresh);
      return answer(res, 200, { refresh_token: refresh });
    }
    if (req.method === 'POST' && path === '/oauth2/token') {
      seen.token++;
      const f = await readForm(req);
      if (f.get('grant_type') !== 'refresh_token' || !secretsIssued.includes(f.get('refresh_token') ?? '')) return answer(res, 401, {});
      const scopes = (f.get('scope') ?? '').split(' ').filter(Boolean);
      for (const s of scopes) seen.scopes.add(s);
      // The harness token server signs what docker-registry trusts; the stand-in asks it as its one account.
      const url = new URL(tokenServer.realm);
      url.searchParams.set('service', f.get('service') ?? '');
      for (const s of scopes) url.searchParams.append('scope', s);
      const signed = await fetch(url, { headers: { authorization: `Basic ${Buffer.from('acr:inner').toString('base64')}` } });
      const { token } = await signed.json() as { token: string };
      secretsIssued.push(token);
      return answer(res, 200, { access_token: token });
    }
    // Everything else is the registry itself; the Host stays ours, so upload Locations point back here.
    const port = Number(registry.host.split(':')[1]);
    const upstream = httpRequest({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  }

  before(async () => {
    work = await tmpDir('patchd-acr');
    goodFile = join(work.path, 'federated-good');
    wrongFile = join(work.path, 'federated-wrong');
    await writeFile(goodFile, `${federated}\n`);
    await writeFile(wrongFile, 'federated-not-this-one\n');
    tokenServer = await startTokenServer({ users: { acr: 'inner' } });
    acr = createServer((req, res) => { standIn(req, res).catch(() => res.destroy()); });
    await new Promise<void>((r) => acr.listen(0, '127.0.0.1', r));
    acrHost = `127.0.0.1:${(acr.address() as AddressInfo).port}`;
    acrUrl = `http://${acrHost}`;
    registry = await startRegistry({ token: tokenServer.registryAuth(`${acrUrl}/oauth2/token`) });
  });
  after(async () => {
    acr?.closeAllConnections();
    acr?.close();
    await registry?.stop();
    await tokenServer?.stop();
    await work?.remove();
  });

  function capture() {
    const lines: string[] = [];
    const destination = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    return { logger: createLogger({ level: 'debug', destination }), text: () => lines.join('') };
  }

  function reset() {
    seen.entra = 0; seen.exchange = 0; seen.token = 0; seen.scopes.clear();
    rejectExchange = false;
  }

  async function pushImage(client: RegistryClient, ref: string) {
    const r = parseReference(ref);
    const layer = Buffer.from(`layer of ${ref} ${Math.random()}`);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
    await client.pushBlob(r, { digest: sha(layer), size: layer.length }, async () => Readable.from([layer]));
    await client.pushBlob(r, { digest: sha(config), size: config.length }, async () => Readable.from([config]));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: sha(config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayerGzip, digest: sha(layer), size: layer.length }],
    }));
    return { layer, digest: await client.putManifest(r, manifest, MediaType.ociManifest) };
  }

  test('push and pull go through one Entra token and one exchange, whatever the scopes', async () => {
    reset();
    const { logger, text } = capture();
    const keychain = acrEntraKeychain({ registry: acrHost, endpoint: acrUrl, tenantId: tenant, clientId, tokenFile: goodFile, authorityHost: `${acrUrl}/`, dispatcher });
    const client = createRegistryClient({ logger, dispatcher, keychain });
    const pushed = await Promise.all(['team/app:v1', 'team/worker:v1'].map((name) => pushImage(client, `${acrHost}/${name}`)));
    for (const [i, name] of ['team/app', 'team/worker'].entries()) {
      const ref = parseReference(`${acrHost}/${name}:v1`);
      const got = await client.getManifest(ref);
      assert.equal(got.digest, pushed[i]!.digest);
      const chunks: Buffer[] = [];
      for await (const c of await client.openBlob(ref, { digest: sha(pushed[i]!.layer), size: pushed[i]!.layer.length })) chunks.push(c as Buffer);
      assert.deepEqual(Buffer.concat(chunks), pushed[i]!.layer);
    }
    assert.equal(seen.entra, 1, 'one Entra token');
    assert.equal(seen.exchange, 1, 'one exchange for every operation and scope');
    assert.ok(seen.token >= 2, `an access token per scope (${seen.token})`);
    assert.ok(seen.scopes.has('repository:team/app:pull,push') && seen.scopes.has('repository:team/worker:pull,push'), [...seen.scopes].join(' '));
    const logged = text();
    for (const secret of secretsIssued) assert.ok(!logged.includes(secret), 'no token or secret in the logs');
  });

  test('the refresh token is held until shortly before its exp, then exchanged again', async () => {
    reset();
    let clock = Date.now();
    const keychain = acrEntraKeychain({ registry: acrHost, endpoint: acrUrl, tenantId: tenant, clientId, clientSecret, authorityHost: `${acrUrl}/`, dispatcher, now: () => clock });
    const first = await keychain.resolve(acrHost);
    assert.ok(first?.identityToken);
    const exp = jwtExpiry(first.identityToken)!;
    clock = exp - 10 * 60_000;
    assert.equal((await keychain.resolve(acrHost))?.identityToken, first.identityToken);
    assert.equal(seen.exchange, 1);
    clock = exp - 60_000; // inside the renewal margin; the Entra token (an hour) has run out too
    const second = await keychain.resolve(acrHost);
    assert.notEqual(second?.identityToken, first.identityToken);
    assert.equal(seen.exchange, 2);
    assert.equal(seen.entra, 2);
    assert.equal(await keychain.resolve('other.azurecr.io'), undefined, 'only its own registry');
  });

  test('a registry configured with entra credentials (workload identity from the environment) is reached through the exchange', async () => {
    reset();
    const { logger, text } = capture();
    const config = loadConfig(
      { AZURE_TENANT_ID: tenant, AZURE_CLIENT_ID: clientId, AZURE_FEDERATED_TOKEN_FILE: goodFile, AZURE_AUTHORITY_HOST: `${acrUrl}/` },
      `registries:\n  acr:\n    url: ${acrUrl}\n    credentials:\n      entra: {}\n`,
    );
    const access = connectRegistries(config, { dispatcher, logger }).get('acr')!;
    const pushed = await pushImage(access.client, `${acrHost}/wired/app:v1`);
    assert.equal((await access.client.getManifest(parseReference(`${acrHost}/wired/app:v1`))).digest, pushed.digest);
    assert.equal(seen.exchange, 1);
    // What a careless log line of the config would print: the secrets are censored.
    logger.info({ registry: config.registries.acr, entra: { clientSecret } }, 'registry');
    logger.info({ clientSecret }, 'registry');
    const logged = text();
    assert.ok(logged.includes('[redacted]'));
    for (const secret of secretsIssued) assert.ok(!logged.includes(secret), 'no token or secret in the logs');
  });

  test('a wrong federated token is AUTH_FAILED naming the registry, and no token is in the message or logs', async () => {
    reset();
    const { logger, text } = capture();
    const keychain = acrEntraKeychain({ registry: acrHost, endpoint: acrUrl, tenantId: tenant, clientId, tokenFile: wrongFile, authorityHost: `${acrUrl}/`, dispatcher });
    const client = createRegistryClient({ logger, dispatcher, keychain });
    const error = await client.getManifest(parseReference(`${acrHost}/team/app:v1`)).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof OciError, String(error));
    assert.equal(error.code, 'AUTH_FAILED');
    assert.equal(error.kind, 'upstream');
    assert.equal(error.transient, false);
    assert.match(error.message, new RegExp(acrHost.replace(/[.]/g, '\\.')));
    assert.ok(!error.message.includes('federated-not-this-one') && !error.message.includes(federated), error.message);
    logger.error({ err: error }, 'job failed');
    assert.ok(!text().includes('federated-not-this-one'));
    assert.equal(seen.exchange, 0);
  });

  test('a 401 from the exchange is AUTH_FAILED naming the registry, never the Entra token', async () => {
    reset();
    rejectExchange = true;
    const { logger, text } = capture();
    const keychain = acrEntraKeychain({ registry: acrHost, endpoint: acrUrl, tenantId: tenant, clientId, clientSecret, authorityHost: `${acrUrl}/`, dispatcher });
    const client = createRegistryClient({ logger, dispatcher, keychain });
    const error = await client.getManifest(parseReference(`${acrHost}/team/app:v1`)).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof OciError, String(error));
    assert.equal(error.code, 'AUTH_FAILED');
    assert.equal(error.status, 401);
    assert.match(error.message, /oauth2\/exchange/);
    assert.ok(error.message.includes(acrHost));
    logger.error({ err: error }, 'job failed');
    for (const secret of secretsIssued) assert.ok(!error.message.includes(secret) && !text().includes(secret));
    assert.equal(seen.exchange, 1);
    // The failure is not held: the next attempt asks again (and succeeds once the registry accepts).
    rejectExchange = false;
    assert.ok((await client.getManifest(parseReference(`${acrHost}/team/app:v1`))).digest);
  });
});

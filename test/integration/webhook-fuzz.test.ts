import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { serve } from '@hono/node-server';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { createApp } from '../../src/app/app.js';
import { Metrics } from '../../src/lib/metrics.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { freePort, tmpDir } from '../harness/tools.js';

// Bounded fuzzing of every receiver, over loopback HTTP, with a seeded generator: mutated real
// payloads (bytes and structure), authenticated so the parsers are reached.
// The rule: never a 5xx, never a crash.

const perReceiver = 800;
let seed = 0x5eed;
const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const config = loadConfig({}, `
registries:
  harbor: { url: "https://harbor.example.com", hosts: ["localhost", "hub.harbor.com"], webhookSecret: "h" }
  acr:    { url: "https://myregistry.azurecr.io", webhookSecret: "a" }
  ghcr:   { url: "https://ghcr.io", webhookSecret: "g" }
  local:  { url: "http://127.0.0.1:5000", hosts: ["registry.internal:5000", "registrycluster.local"], webhookSecret: "d" }
`);

async function seeds(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = { harbor: [], acr: [], ghcr: [], distribution: [] };
  const ours = new URL('../../fixtures/webhooks/', import.meta.url);
  for (const name of await readdir(ours)) if (name.startsWith('distribution') && name.endsWith('.json')) out.distribution!.push(await readFile(new URL(name, ours), 'utf8'));
  const vendor = new URL('../../../shared/fixtures-vendor/', import.meta.url);
  if (existsSync(vendor)) {
    const add = async (source: string, dir: string) => {
      for (const name of await readdir(new URL(dir, vendor))) out[source]!.push(await readFile(new URL(`${dir}${name}`, vendor), 'utf8'));
    };
    await add('harbor', 'harbor/website-docs/');
    await add('acr', 'acr/');
    await add('ghcr', 'github/package/');
    await add('distribution', 'distribution/');
  }
  out.harbor!.push('{"type":"PUSH_ARTIFACT","operator":"x","event_data":{"resources":[{"digest":"sha256:' + 'a'.repeat(64) + '","tag":"v1","resource_url":"localhost/p/r:v1"}],"repository":{"repo_full_name":"p/r"}}}');
  out.acr!.push('{"action":"push","target":{"repository":"r","tag":"v1"},"request":{"host":"myregistry.azurecr.io"}}');
  out.ghcr!.push('{"action":"published","package":{"name":"app","namespace":"o/app","registry":{"type":"CONTAINER"},"package_version":{"name":"sha256:' + 'b'.repeat(64) + '","container_metadata":{"tag":{"name":"v1"}}}}}');
  return out;
}

const weird: unknown[] = [null, true, 0, -1, 1e308, '', 'x'.repeat(5000), '\u0000', '\ud800', [], {}, [[[[[]]]]], { __proto__: { polluted: 1 } }, 'sha256:', '../../etc/passwd', 'http://evil.example.net/x'];

function mutateStructure(value: unknown, depth = 0): unknown {
  if (Array.isArray(value)) {
    if (value.length === 0 || random() < 0.2) return pick(weird);
    const copy = [...value];
    const i = Math.floor(random() * copy.length);
    copy[i] = random() < 0.3 ? pick(weird) : mutateStructure(copy[i], depth + 1);
    if (random() < 0.1) copy.push(pick(weird));
    return copy;
  }
  if (value && typeof value === 'object') {
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(copy);
    if (keys.length === 0 || random() < 0.1) return pick(weird);
    const key = pick(keys);
    const r = random();
    if (r < 0.2) delete copy[key];
    else if (r < 0.5) copy[key] = pick(weird);
    else copy[key] = mutateStructure(copy[key], depth + 1);
    return copy;
  }
  return random() < 0.5 ? pick(weird) : value;
}

function mutateBytes(text: string): string | Buffer {
  const bytes = Buffer.from(text);
  const r = random();
  if (r < 0.25) return bytes.subarray(0, Math.floor(random() * bytes.length));
  if (r < 0.5) { const c = Buffer.from(bytes); for (let i = 0; i < 1 + random() * 8; i++) c[Math.floor(random() * c.length)] = Math.floor(random() * 256); return c; }
  if (r < 0.75) { const at = Math.floor(random() * bytes.length); return Buffer.concat([bytes.subarray(0, at), Buffer.from(pick(['{', '}', '"', ',', ':', '[', '\\u', '\xff\xfe'])), bytes.subarray(at)]); }
  return pick(['', 'null', '[]', '{}', '"string"', '1', '{"events":null}', '{"events":[null]}', '{"action":1}']);
}

test(`${perReceiver} mutated bodies per receiver over loopback: no 5xx, the server keeps serving`, { timeout: 120_000 }, async () => {
  const app = createApp({ config, queue: openSqliteQueue(':memory:'), logger: silentLogger(), metrics: new Metrics() });
  const port = await freePort();
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port });
  after(() => { server.close(); });
  await new Promise((r) => setTimeout(r, 50));
  const all = await seeds();
  const statuses = new Map<number, number>();
  for (const [source, bodies] of Object.entries(all)) {
    assert.ok(bodies.length > 0, source);
    for (let i = 0; i < perReceiver; i++) {
      const base = pick(bodies);
      let body: string | Buffer;
      try {
        body = random() < 0.5 ? JSON.stringify(mutateStructure(JSON.parse(base))) : mutateBytes(base);
      } catch {
        body = mutateBytes(base);
      }
      const raw = typeof body === 'string' ? Buffer.from(body) : body;
      const headers: Record<string, string> = { 'content-type': pick(['application/json', 'application/vnd.docker.distribution.events.v1+json', 'text/plain', 'application/cloudevents+json']) };
      if (source === 'ghcr') {
        headers['x-github-event'] = pick(['package', 'registry_package', 'package', 'ping', 'push']);
        headers['x-hub-signature-256'] = `sha256=${createHmac('sha256', 'g').update(raw).digest('hex')}`;
      } else {
        headers.authorization = { harbor: 'h', acr: 'Bearer a', distribution: 'Bearer d' }[source]!;
      }
      const res = await fetch(`http://127.0.0.1:${port}/webhooks/${source}`, { method: 'POST', body: new Uint8Array(raw), headers });
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(res.status < 500, `${source} answered ${res.status} to ${raw.toString('utf8').slice(0, 300)}`);
    }
  }
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  // Both sides of the parsers were exercised.
  assert.ok((statuses.get(400) ?? 0) > 100, JSON.stringify([...statuses]));
  assert.ok((statuses.get(200) ?? 0) + (statuses.get(202) ?? 0) > 100, JSON.stringify([...statuses]));
});

// fast-check, against the real service: `patchd serve` (the built CLI) on loopback, 2,500 deliveries
// per receiver, shaped like each sender's payload with fuzzed fields, then encoded straight, cut,
// bit-flipped, nested deep or replaced by arbitrary bytes; mostly authenticated so the parsers are
// reached. Never a 5xx; every 400 says why; the service still answers afterwards. FC_SEED=<n> replays a run.
// Build first: `npx tsc -p tsconfig.build.json`.

const fuzzPerReceiver = 2500;
const fuzzSeed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

const manifestTypes = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
/**
 * Each sender's payload shape with fuzzed fields. `wild`: any field may be any JSON value (most such
 * deliveries are refused as malformed); otherwise fields are plausible or absent (most get as far as
 * the queue or a reasoned ignore).
 */
function payloads(wild: boolean, ownHosts: readonly string[]) {
  const maybe = <T>(arb: fc.Arbitrary<T>) => wild
    ? fc.oneof({ weight: 6, arbitrary: arb }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }, { weight: 1, arbitrary: fc.constant(undefined) })
    : fc.oneof({ weight: 12, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(undefined) });
  /** A field the sender always sends: absent only when wild. */
  const always = <T>(arb: fc.Arbitrary<T>) => (wild ? maybe(arb) : arb);
  /** The keys a record always has (none when wild). */
  const keys = <K extends string>(...names: K[]) => ({ requiredKeys: wild ? [] : names });
  const digestArb = maybe(fc.oneof(fc.stringMatching(/^sha256:[0-9a-f]{64}$/), fc.constantFrom('sha256:xxxx', 'sha256:', `sha512:${'a'.repeat(128)}`), fc.string()));
  const tagArb = maybe(fc.oneof(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,30}$/), fc.constantFrom('main-patched', 'v1-patched-2', `sha256-${'c'.repeat(64)}.sig`, 'x'.repeat(200)), fc.string({ unit: 'grapheme' })));
  const repositoryArb = maybe(fc.oneof(fc.stringMatching(/^[a-z0-9]+([._/-][a-z0-9]+){0,4}$/), fc.constantFrom('../../etc/passwd', '', 'a//b', 'UPPER/Case', '%2e%2e/x'), fc.string({ unit: 'binary', maxLength: 300 })));
  // Mostly the receiver's own registry hosts (so deliveries get as far as the queue), sometimes others.
  const hostArb = maybe(fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...ownHosts) },
    { weight: 2, arbitrary: fc.constantFrom('registry.internal:5000', 'registrycluster.local', 'localhost', 'hub.harbor.com', 'myregistry.azurecr.io', 'ghcr.io') },
    { weight: 1, arbitrary: fc.constantFrom('evil.example.net', '', '127.0.0.1:1') }, { weight: 1, arbitrary: fc.domain() }, { weight: 1, arbitrary: fc.string() },
  ));
  const agentArb = maybe(fc.constantFrom('docker/27.0', 'docker/27.0', 'containerd/2', 'patchd/1.0.0', ''));

  const distributionBody = fc.record({
    events: always(fc.array(fc.record({
      id: maybe(fc.string()), action: always(fc.constantFrom('push', 'push', 'push', 'pull', 'delete', 'mount')),
      target: maybe(fc.record({ mediaType: maybe(fc.constantFrom(...manifestTypes, ...manifestTypes, 'application/octet-stream', 'application/vnd.oci.image.layer.v1.tar+gzip')), digest: digestArb, repository: repositoryArb, tag: tagArb, url: maybe(fc.webUrl()) }, { requiredKeys: [] })),
      request: maybe(fc.record({ host: hostArb, useragent: agentArb, method: maybe(fc.constantFrom('PUT', 'GET')) }, { requiredKeys: [] })),
      actor: maybe(fc.record({ name: maybe(fc.string()) }, { requiredKeys: [] })),
    }, keys('action', 'target', 'request')), { maxLength: 6 })),
  }, keys('events'));
  const harborData = fc.record({
    resources: maybe(fc.array(fc.record({
      digest: digestArb, tag: tagArb, resource_url: maybe(fc.tuple(hostArb, repositoryArb, tagArb).map(([h, r, t]) => `${h}/${r}:${t}`)),
      scan_overview: maybe(fc.dictionary(fc.string(), maybe(fc.record({ report_id: maybe(fc.uuid()), end_time: maybe(fc.string()) }, { requiredKeys: [] })))),
    }, { requiredKeys: [] }), { maxLength: 4 })),
    repository: maybe(fc.record({ name: maybe(fc.string()), namespace: maybe(fc.string()), repo_full_name: repositoryArb }, { requiredKeys: [] })),
  }, { requiredKeys: [] });
  const harborBody = fc.oneof(
    fc.record({ type: always(fc.constantFrom('PUSH_ARTIFACT', 'PUSH_ARTIFACT', 'SCANNING_COMPLETED', 'DELETE_ARTIFACT', 'QUOTA_EXCEED')), operator: maybe(fc.string()), occur_at: maybe(fc.integer()), event_data: always(harborData) }, keys('type', 'event_data')),
    fc.record({ specversion: always(fc.constant('1.0')), type: always(fc.constantFrom('harbor.artifact.pushed', 'harbor.scan.completed', 'harbor.artifact.deleted')), operator: maybe(fc.string()), data: always(harborData) }, keys('specversion', 'type', 'data')),
  );
  const acrBody = fc.record({
    id: maybe(fc.uuid()), action: always(fc.constantFrom('push', 'push', 'push', 'delete', 'chart_push', 'quarantine')),
    target: maybe(fc.record({ mediaType: maybe(fc.constantFrom(...manifestTypes)), digest: digestArb, repository: repositoryArb, tag: tagArb, size: maybe(fc.integer()) }, { requiredKeys: [] })),
    request: maybe(fc.record({ host: hostArb, useragent: agentArb }, { requiredKeys: [] })),
  }, keys('action', 'target', 'request'));
  const githubPackage = fc.record({
    name: always(fc.string()), namespace: maybe(fc.string()), owner: maybe(fc.record({ login: maybe(fc.string()) }, { requiredKeys: [] })),
    registry: maybe(fc.record({ type: maybe(fc.constantFrom('CONTAINER', 'container', 'npm')), url: maybe(fc.webUrl()) }, { requiredKeys: [] })),
    package_version: maybe(fc.record({
      name: digestArb, package_url: maybe(fc.oneof(fc.tuple(repositoryArb, tagArb).map(([r, t]) => `ghcr.io/${r}:${t}`), fc.string())),
      container_metadata: maybe(fc.record({ tag: maybe(fc.record({ name: tagArb, digest: digestArb }, { requiredKeys: [] })), manifest: maybe(fc.record({ digest: digestArb }, { requiredKeys: [] })) }, { requiredKeys: [] })),
    }, { requiredKeys: [] })),
  }, keys('name', 'registry', 'package_version'));
  const ghcrBody = fc.record({ action: always(fc.constantFrom('published', 'updated', 'deleted')), package: always(githubPackage), registry_package: maybe(githubPackage) }, keys('action', 'package'));
  return { distribution: distributionBody, harbor: harborBody, acr: acrBody, ghcr: ghcrBody };
}

/** A delivery's bytes: the shaped payload as JSON, or that JSON damaged, or something else entirely. */
const encoded = (shaped: fc.Arbitrary<unknown>) => fc.oneof(
  { weight: 10, arbitrary: shaped.map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  { weight: 2, arbitrary: fc.tuple(shaped, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([v, cut, at, byte]) => {
    const b = Buffer.from(JSON.stringify(v) ?? 'null');
    if (cut % 2 === 0) return b.subarray(0, cut % (b.length + 1));
    const c = Buffer.from(b); if (c.length > 0) c[at % c.length] = byte; return c;
  }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('[', '{"events":[', '{"a":')).map(([depth, open]) => Buffer.from(open.repeat(depth))) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 500 }).map((s) => Buffer.from(s)) },
);

test(`${fuzzPerReceiver * 4} fast-check deliveries to a real patchd serve over loopback: zero 5xx, every 400 says why, the service keeps answering`, { timeout: 4 * 60_000 }, async () => {
  const work = await tmpDir('patchd-webhook-fuzz');
  after(() => work.remove());
  const closed = `http://127.0.0.1:${await freePort()}`; // nothing listens: jobs fail fast, nothing leaves the machine
  const server = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(`${work.path}/data`)}`,
      'worker: { concurrency: 1, maxAttempts: 1 }',
      'registries:',
      `  harbor: { url: "${closed}", hosts: ["localhost", "hub.harbor.com"], webhookSecret: "h" }`,
      `  acr:    { url: "${closed}", hosts: ["myregistry.azurecr.io"], webhookSecret: "a" }`,
      `  ghcr:   { url: "${closed}", hosts: ["ghcr.io"], webhookSecret: "g" }`,
      `  local:  { url: "${closed}", hosts: ["registry.internal:5000", "registrycluster.local"], webhookSecret: "d" }`,
    ],
  });
  after(() => server.stop());
  console.log(`fast-check seed ${fuzzSeed} (replay: FC_SEED=${fuzzSeed})`);
  const statuses = new Map<string, number>();
  const ownHosts = { distribution: ['registry.internal:5000', 'registrycluster.local'], harbor: ['localhost', 'hub.harbor.com'], acr: ['myregistry.azurecr.io'], ghcr: ['ghcr.io'] };
  const receivers = (['distribution', 'harbor', 'acr', 'ghcr'] as const).map((source) => [source, fc.oneof(payloads(false, ownHosts[source])[source], payloads(true, ownHosts[source])[source])] as const);
  const started = Date.now();
  for (const [source, shaped] of receivers) {
    const delivery = fc.record({
      body: encoded(shaped),
      authentic: fc.oneof({ weight: 12, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      contentType: fc.constantFrom('application/json', 'application/vnd.docker.distribution.events.v1+json', 'text/plain', 'application/cloudevents+json', ''),
      githubEvent: fc.constantFrom('package', 'registry_package', 'package', 'ping', 'push', ''),
    });
    await fc.assert(fc.asyncProperty(delivery, async ({ body, authentic, contentType, githubEvent }) => {
      const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
      const secret = { harbor: 'h', acr: 'a', ghcr: 'g', distribution: 'd' }[source];
      if (source === 'ghcr') {
        if (githubEvent) headers['x-github-event'] = githubEvent;
        headers['x-hub-signature-256'] = `sha256=${createHmac('sha256', authentic ? secret : 'wrong').update(body).digest('hex')}`;
      } else if (authentic) headers.authorization = source === 'harbor' ? secret : `Bearer ${secret}`;
      const res = await fetch(`${server.url}/webhooks/${source}`, { method: 'POST', body: new Uint8Array(body), headers });
      const text = await res.text();
      statuses.set(`${source} ${res.status}`, (statuses.get(`${source} ${res.status}`) ?? 0) + 1);
      assert.ok(res.status < 500, `${source} answered ${res.status} (${text.slice(0, 200)}) to ${body.toString('utf8').slice(0, 300)}`);
      if (res.status === 400) {
        const reason = (JSON.parse(text) as { error?: unknown }).error;
        assert.ok(typeof reason === 'string' && reason.length > 0, `${source}: a 400 without a reason: ${text.slice(0, 200)}`);
      }
    }), { numRuns: fuzzPerReceiver, seed: fuzzSeed, endOnFailure: true });
  }
  const elapsed = Date.now() - started;
  const total = [...statuses.values()].reduce((a, b) => a + b, 0);
  console.log(`${total} deliveries in ${elapsed} ms (${Math.round(total / (elapsed / 1000))}/s): ${[...statuses].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  assert.equal(total, fuzzPerReceiver * 4, 'every delivery was answered');
  assert.equal(server.child.exitCode, null, 'patchd serve is still running');
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200, '/healthz answers after the fuzzing');
  assert.equal((await fetch(`${server.url}/jobs?limit=5`)).status, 200, '/jobs answers after the fuzzing');
  // Each receiver's parser saw both sides: deliveries refused as malformed and deliveries accepted or ignored.
  for (const [source] of receivers) {
    assert.ok((statuses.get(`${source} 400`) ?? 0) > 50, `${source}: malformed deliveries were refused: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(`${source} 200`) ?? 0) + (statuses.get(`${source} 202`) ?? 0) > 50, `${source}: deliveries were accepted or ignored: ${JSON.stringify([...statuses])}`);
    assert.ok((statuses.get(`${source} 202`) ?? 0) > 10, `${source}: deliveries enqueued jobs: ${JSON.stringify([...statuses])}`);
  }
});

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { serve } from '@hono/node-server';
import { after, test } from 'node:test';
import { createApp } from '../../src/app/app.js';
import { Metrics } from '../../src/lib/metrics.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import { freePort } from '../harness/tools.js';

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

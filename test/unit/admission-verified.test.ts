import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { Agent } from 'undici';
import { createAdmissionApp } from '../../src/app/admission/routes.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { Annotation } from '../../src/publish/annotations.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import type { JobQueue } from '../../src/queue/types.js';
import { connectRegistries } from '../../src/worker.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { pushTinyImage } from '../harness/tiny-image.js';

// Verified mode against a real registry (distribution 2.8), through the same
// per-registry clients `patchd serve` builds (connectRegistries): images that
// carry patchd's annotations, a `-patched` tag without them, a patched digest
// only the job store knows; mutate's rewrites checked against the target's
// annotations; stopped and silent registries, failing open and closed within
// the lookup bound.

const R = 'registry.example.com:5000';
const DOWN = 'down.example.com:5000';
const SILENT = 'silent.example.com:5000';

let registry: RunningRegistry;
let stopped: RunningRegistry;
let silent: Server;
let silentPort: number;
const silentSockets = new Set<Socket>();
let foreign: Server;
let foreignPort: number;
let foreignConnections = 0;
const dispatcher = new Agent();
const images: Record<string, string> = {};

before(async () => {
  [registry, stopped] = await Promise.all([startRegistry(), startRegistry()]);
  await stopped.stop(); // a registry that was there and is gone: connections are refused
  // Accepts connections and never answers: only the lookup bound ends the wait.
  silent = createServer((socket) => { silentSockets.add(socket); socket.on('error', () => undefined); });
  foreign = createServer((socket) => { foreignConnections++; socket.destroy(); });
  [silentPort, foreignPort] = await Promise.all([listen(silent), listen(foreign)]);

  const push = async (name: string, repository: string, tag: string, annotations?: Record<string, string>) => {
    images[name] = (await pushTinyImage({ registryUrl: registry.url, repository, tag, content: name, ...(annotations ? { annotations } : {}) })).digest;
  };
  await push('web', 'shop/web', '1.4');
  await push('web-patched', 'shop/web', '1.4-patched', patchdAnnotations('shop/web:1.4', images['web']!));
  await push('fake', 'shop/fake', '1.0-patched');
  await push('half', 'shop/half', '1.0-patched', { [Annotation.patched]: 'true' });
  await push('api', 'shop/api', '2.0');
  await push('api-patched', 'shop/api', '2.0-patched');
});

after(async () => {
  for (const s of silentSockets) s.destroy();
  silent?.close();
  foreign?.close();
  await registry?.stop();
  await dispatcher.close();
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** What patchd writes on an image it publishes (publish/annotations.ts). */
function patchdAnnotations(base: string, baseDigest: string): Record<string, string> {
  return { [Annotation.baseName]: `${registry.host}/${base}`, [Annotation.baseDigest]: baseDigest, [Annotation.created]: '2026-11-28T00:00:00Z', [Annotation.patched]: 'true' };
}

function setup(admission: string, queue: JobQueue = openSqliteQueue(':memory:')) {
  const config = loadConfig({}, `
admission: { certFile: a, keyFile: b, cacheTtlSeconds: 0, ${admission.includes('mode:') ? admission : `mode: verified, ${admission}`} }
registries:
  shop: { url: "${registry.url}", hosts: ["${R}"] }
  down: { url: "${stopped.url}", hosts: ["${DOWN}"] }
  silent: { url: "http://127.0.0.1:${silentPort}", hosts: ["${SILENT}"] }
`);
  const logger = silentLogger();
  const app = createAdmissionApp({ config, queue, logger, registries: connectRegistries(config, { dispatcher, logger }) });
  const post = async (webhook: 'validate' | 'mutate', images: readonly string[]) => {
    const review = podReview(images);
    const started = performance.now();
    const res = await app.request(`/admission/${webhook}`, { method: 'POST', body: JSON.stringify(review) });
    assert.equal(res.status, 200);
    const body = await res.json() as { response: { uid: string; allowed: boolean; status?: { message: string }; patch?: string; warnings?: string[] } };
    assert.equal(body.response.uid, review.request.uid);
    return { ...body.response, ms: performance.now() - started, review };
  };
  return { post, queue };
}

let uid = 0;
/** A Pod CREATE with one container per image, named c0, c1, ... */
function podReview(images: readonly string[]) {
  return {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: `verified-${++uid}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop', operation: 'CREATE', userInfo: { username: 'kubernetes-admin' },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } },
      oldObject: null, dryRun: false,
    },
  };
}

/** The job patchd records after patching repository:tag at `original` into `patched`. */
async function recordPatched(queue: JobQueue, repository: string, tag: string, original: string, patched: string): Promise<string> {
  const { id } = (await queue.enqueue({ registry: 'shop', repository, tag, digest: original, source: 'distribution', trigger: 'push' }));
  assert.equal((await queue.claim())?.id, id);
  await queue.succeed(id, 'succeeded', { status: 'patched', target: `${registry.host}/${repository}:${tag}-patched`, digest: patched, sourceDigest: original });
  return id;
}

const reasonFor = (message: string | undefined, container: string) => (message ?? '').split('; ').find((r) => r.includes(`(containers ${container})`));

test('verified: patchd\'s annotations or the job store prove an image; a -patched tag alone does not', async () => {
  const { post, queue } = setup('');
  const apiJob = await recordPatched(queue, 'shop/api', '2.0', images['api']!, images['api-patched']!);
  const answer = await post('validate', [
    `${R}/shop/web:1.4-patched`, // c0: annotated, found by HEAD of the tag
    `${R}/shop/web@${images['web-patched']}`, // c1: annotated, by digest
    `${R}/shop/web:1.4-patched@${images['web-patched']}`, // c2: tag@digest
    `${R}/shop/api:2.0-patched`, // c3: no annotations, but the job store produced it
    `${R}/shop/fake:1.0-patched`, // c4: a -patched tag anyone could push
    `${R}/shop/half:1.0-patched`, // c5: io.patchd.patched without the base digest
    `${R}/shop/web:1.4`, // c6: the original, never patched by a job here
    `${R}/shop/api:2.0`, // c7: an original whose patched image exists
    `${R}/shop/missing:1.0-patched`, // c8: no such tag
    `${registry.host}/shop/web:1.4-patched`, // c9: the registry by its URL's own host
  ]);
  assert.equal(answer.allowed, false);
  const message = answer.status?.message;
  for (const allowed of ['c0', 'c1', 'c2', 'c3', 'c9']) assert.equal(reasonFor(message, allowed), undefined, `${allowed}: ${message}`);
  assert.match(reasonFor(message, 'c4')!, /: tagged 1\.0-patched but not patchd's output \(sha256:[0-9a-f]{64} is neither in patchd's job store nor annotated by patchd\): push 1\.0 to registry\.example\.com:5000 so patchd patches it$/);
  assert.match(reasonFor(message, 'c5')!, /tagged 1\.0-patched but not patchd's output/);
  assert.match(reasonFor(message, 'c6')!, new RegExp(`not patched by patchd: push it to ${R} so patchd patches it, or use ${R}/shop/web:1\\.4-patched$`));
  assert.match(reasonFor(message, 'c7')!, new RegExp(`patched by patchd as ${registry.host}/shop/api:2\\.0-patched@${images['api-patched']} \\(job ${apiJob}\\): use that image`));
  assert.match(reasonFor(message, 'c8')!, /shop\/missing:1\.0-patched does not exist in registry\.example\.com:5000/);
});

test('verified: registries patchd does not patch are denied without being contacted', async () => {
  const { post } = setup('');
  const answer = await post('validate', [`127.0.0.1:${foreignPort}/shop/web:1.4-patched`, 'ghcr.io/acme/app:1.0-patched', 'nginx:1.27-patched']);
  assert.equal(answer.allowed, false);
  assert.match(reasonFor(answer.status?.message, 'c0')!, new RegExp(`127\\.0\\.0\\.1:${foreignPort} is not a registry patchd patches`));
  assert.match(reasonFor(answer.status?.message, 'c1')!, /ghcr\.io is not a registry patchd patches/);
  assert.match(reasonFor(answer.status?.message, 'c2')!, /docker\.io is not a registry patchd patches/);
  assert.equal(foreignConnections, 0);
});

test('mutate (verified): repo:tag becomes repo:tag-patched@digest under the name the Pod used, only when the target carries patchd\'s annotations for it', async () => {
  const queue = openSqliteQueue(':memory:');
  await recordPatched(queue, 'shop/web', '1.4', images['web']!, images['web-patched']!);
  await recordPatched(queue, 'shop/api', '2.0', images['api']!, images['api-patched']!);
  const open = setup('', queue);
  const answer = await open.post('mutate', [`${R}/shop/web:1.4`, `${R}/shop/api:2.0`, `${R}/shop/web:1.4-patched`]);
  assert.equal(answer.allowed, true);
  const ops = JSON.parse(Buffer.from(answer.patch!, 'base64').toString()) as { op: string; path: string; value: string }[];
  assert.deepEqual(ops, [{ op: 'replace', path: '/spec/containers/0/image', value: `${R}/shop/web:1.4-patched@${images['web-patched']}` }],
    'api:2.0-patched has no annotations: not proof in verified mode; a -patched image is left as it is');

  const closed = setup('failOpen: false', queue);
  const denied = await closed.post('mutate', [`${R}/shop/web:1.4`, `${R}/shop/api:2.0`]);
  assert.equal(denied.allowed, false);
  assert.match(reasonFor(denied.status?.message, 'c1')!, new RegExp(`shop/api:2\\.0-patched@${images['api-patched']} does not carry patchd's annotations for ${images['api']}`));
  assert.equal(reasonFor(denied.status?.message, 'c0'), undefined);

  // Tag mode trusts the job store: the same job rewrites api:2.0.
  const tagMode = setup('mode: tag', queue);
  const rewritten = await tagMode.post('mutate', [`${R}/shop/api:2.0`]);
  assert.deepEqual(JSON.parse(Buffer.from(rewritten.patch!, 'base64').toString()), [{ op: 'replace', path: '/spec/containers/0/image', value: `${R}/shop/api:2.0-patched@${images['api-patched']}` }]);
});

test('a stopped registry: fail-open allows with a warning, fail-closed denies, both within the lookup bound', async () => {
  const bound = 2000;
  const slack = 2000; // two busy cores
  const open = setup(`lookupTimeoutMs: ${bound}`);
  const validate = await open.post('validate', [`${DOWN}/shop/app:1.0-patched`]);
  assert.equal(validate.allowed, true);
  assert.match(validate.warnings?.[0] ?? '', new RegExp(`patchd could not check ${DOWN}/shop/app:1\\.0-patched \\(.*\\); allowed because admission\\.failOpen is true`));
  assert.ok(validate.ms < bound + slack, `answered in ${validate.ms} ms`);
  const mutate = await open.post('mutate', [`${DOWN}/shop/app:1.0`]);
  assert.equal(mutate.allowed, true);
  assert.equal(mutate.patch, undefined);
  assert.equal(mutate.warnings?.length, 1);
  assert.ok(mutate.ms < bound + slack, `answered in ${mutate.ms} ms`);

  const closed = setup(`lookupTimeoutMs: ${bound}, failOpen: false`);
  for (const webhook of ['validate', 'mutate'] as const) {
    const answer = await closed.post(webhook, [`${DOWN}/shop/app:1.0${webhook === 'validate' ? '-patched' : ''}`]);
    assert.equal(answer.allowed, false, webhook);
    assert.match(answer.status?.message ?? '', /\(containers c0\): cannot check it: HEAD shop\/app:1\.0(-patched)? on down: /);
    assert.ok(answer.ms < bound + slack, `${webhook} answered in ${answer.ms} ms`);
  }
});

test('a registry that never answers: the lookup gives up at lookupTimeoutMs', async () => {
  const bound = 500;
  const open = setup(`lookupTimeoutMs: ${bound}`);
  const answer = await open.post('validate', [`${SILENT}/shop/app:1.0-patched`, `${SILENT}/shop/app:1.0-patched`]);
  assert.equal(answer.allowed, true);
  assert.deepEqual(answer.warnings?.length, 1, 'one lookup per distinct image');
  assert.match(answer.warnings![0]!, /no answer within 500 ms/);
  assert.ok(answer.ms >= bound - 50 && answer.ms < bound + 1500, `answered in ${answer.ms} ms`);

  const closed = setup(`lookupTimeoutMs: ${bound}, failOpen: false`);
  const denied = await closed.post('mutate', [`${SILENT}/shop/app:1.0`]);
  assert.equal(denied.allowed, false);
  assert.match(denied.status?.message ?? '', /cannot check it: HEAD shop\/app:1\.0 on silent: no answer within 500 ms/);
});

test('registry answers are cached: the same answer while the registry is gone, until the TTL', async () => {
  const own = await startRegistry();
  const { digest: original } = await pushTinyImage({ registryUrl: own.url, repository: 'cache/app', tag: '1.0', content: 'cache original' });
  await pushTinyImage({ registryUrl: own.url, repository: 'cache/app', tag: '1.0-patched', content: 'cache patched', annotations: { ...patchdAnnotations('cache/app:1.0', original) } });
  const config = loadConfig({}, `
admission: { certFile: a, keyFile: b, mode: verified, cacheTtlSeconds: 30, lookupTimeoutMs: 1000, failOpen: false }
registries:
  own: { url: "${own.url}" }
`);
  const logger = silentLogger();
  const app = createAdmissionApp({ config, queue: openSqliteQueue(':memory:'), logger, registries: connectRegistries(config, { dispatcher, logger }) });
  const validate = async () => {
    const res = await app.request('/admission/validate', { method: 'POST', body: JSON.stringify(podReview([`${own.host}/cache/app:1.0-patched`])) });
    return (await res.json() as { response: { allowed: boolean; status?: { message: string } } }).response;
  };
  assert.equal((await validate()).allowed, true);
  await own.stop();
  const started = performance.now();
  assert.equal((await validate()).allowed, true, 'answered from the cache');
  assert.ok(performance.now() - started < 200, `a cached answer takes ${performance.now() - started} ms`);
});

test('a tag-only push still waiting for the worker is the job named in the denial', async () => {
  const queue = openSqliteQueue(':memory:');
  const { id } = (await queue.enqueue({ registry: 'shop', repository: 'shop/web', tag: '1.4', source: 'distribution', trigger: 'push' }));
  const { post } = setup('', queue);
  const answer = await post('validate', [`${R}/shop/web:1.4`]);
  assert.match(answer.status?.message ?? '', new RegExp(`\\(containers c0\\): patch pending: job ${id} \\(queued\\)$`));
});

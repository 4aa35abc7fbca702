import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { createAdmissionApp } from '../../src/app/admission/routes.js';
import type { RegistryLookups } from '../../src/app/admission/registry-lookups.js';
import { createApp } from '../../src/app/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { Metrics } from '../../src/lib/metrics.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import type { JobQueue } from '../../src/queue/types.js';

// The admission webhooks through app.request(): every kind and container
// list of the fixtures, tag mode, exemptions, audit mode, mutate's JSONPatch
// (applied here, by hand), malformed reviews. Registry answers come from an
// in-memory RegistryLookups; admission-verified.test.ts asks a real registry.

const fixtures = new URL('../../fixtures/admission/', import.meta.url);
const R = 'registry.example.com:5000';

interface Review { apiVersion: string; kind: string; request: { uid: string; namespace?: string; object: Record<string, unknown> | null; oldObject?: unknown; [k: string]: unknown } }
interface Answer { apiVersion: string; kind: string; response: { uid: string; allowed: boolean; status?: { code: number; message: string }; patchType?: string; patch?: string; warnings?: string[] } }

const fixture = async (name: string): Promise<Review> => JSON.parse(await readFile(new URL(name, fixtures), 'utf8')) as Review;

function setup(admission = '', options: { lookups?: RegistryLookups } = {}) {
  const config = loadConfig({}, `
admission: { certFile: /nonexistent/tls.crt, keyFile: /nonexistent/tls.key, cacheTtlSeconds: 0${admission ? `, ${admission}` : ''} }
registries:
  shop: { url: "http://127.0.0.1:9", hosts: ["${R}"] }
`);
  const queue = openSqliteQueue(':memory:');
  const metrics = new Metrics();
  const app = createAdmissionApp({ config, queue, registries: new Map(), logger: silentLogger(), metrics, lookups: options.lookups ?? unreachable });
  const post = async (webhook: 'validate' | 'mutate', body: unknown) => {
    const res = await app.request(`/admission/${webhook}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    return { status: res.status, body: await res.json() as Answer & { error?: string; code?: string } };
  };
  return { app, queue, metrics, post, config };
}

/** Tag mode never asks a registry: this proves it. */
const unreachable: RegistryLookups = {
  digestOf: () => { throw new Error('tag mode asked a registry for a digest'); },
  annotationsOf: () => { throw new Error('tag mode asked a registry for a manifest'); },
};

/** Tags resolve to a digest derived from their name; no manifest has annotations. */
const fakeRegistry = (): RegistryLookups & { asked: string[] } => {
  const asked: string[] = [];
  return {
    asked,
    digestOf: async (registry, repository, tag) => { asked.push(`${registry}/${repository}:${tag}`); return digestOf(`${repository}:${tag}`); },
    annotationsOf: async () => ({}),
  };
};
const digestOf = (name: string) => `sha256:${Buffer.from(name).toString('hex').padEnd(64, '0').slice(0, 64)}`;

async function recordJob(queue: JobQueue, job: { repository: string; tag?: string; digest?: string }, outcome?: { status: 'succeeded' | 'skipped' | 'dead'; result?: unknown; error?: string }): Promise<string> {
  const { id } = (await queue.enqueue({ registry: 'shop', source: 'distribution', trigger: 'push', ...job }));
  if (!outcome) return id;
  assert.equal((await queue.claim())?.id, id);
  if (outcome.status === 'dead') await queue.fail(id, outcome.error ?? 'failed', undefined);
  else await queue.succeed(id, outcome.status, outcome.result);
  return id;
}

/** A patchd job that patched repository:tag (at its digest) into repository:tag-patched at `patched`. */
function recordPatched(queue: JobQueue, repository: string, tag: string, patched = digestOf(`${repository}:${tag}-patched`)): Promise<string> {
  return recordJob(queue, { repository, tag, digest: digestOf(`${repository}:${tag}`) }, {
    status: 'succeeded',
    result: { status: 'patched', target: `127.0.0.1:9/${repository}:${tag}-patched`, digest: patched, sourceDigest: digestOf(`${repository}:${tag}`) },
  });
}

/** RFC 6902 `replace`, written here rather than taken from src: the target must exist, and is replaced. */
function applyPatch(document: unknown, base64: string): unknown {
  const ops = JSON.parse(Buffer.from(base64, 'base64').toString('utf8')) as { op: string; path: string; value: unknown }[];
  const copy = structuredClone(document);
  for (const { op, path, value } of ops) {
    assert.equal(op, 'replace');
    const tokens = path.split('/').slice(1).map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = tokens.pop()!;
    let node = copy as Record<string, unknown>;
    for (const t of tokens) node = node[t] as Record<string, unknown>;
    assert.ok(Object.hasOwn(node, last), `replace needs ${path} to exist`);
    node[last] = value;
  }
  return copy;
}

const get = (doc: unknown, path: string) => path.split('/').slice(1).reduce<unknown>((n, t) => (n as Record<string, unknown>)?.[t], doc);
const denialOf = (a: Answer) => a.response.status?.message ?? '';

test('validate (tag mode): each kind and container list; the answer carries the request uid', async () => {
  const { post } = setup();
  const expectations: [string, { denied: string[]; passed: string[] }][] = [
    ['pod-create.json', { denied: [`${R}/shop/web:1.4 (containers web)`, 'nginx (containers proxy)'], passed: ['shop/migrate:1.4-patched'] }],
    ['deployment-create.json', { denied: [`${R}/shop/web:1.4 (containers web)`, 'docker.io/library/busybox:1.36 (containers debug-tools)'], passed: [] }],
    ['replicaset-create.json', { denied: [], passed: ['shop/web:1.4-patched-2'] }],
    ['statefulset-create.json', { denied: [`${R}/shop/db:16 (containers postgres)`], passed: ['db-init:16-patched'] }],
    ['daemonset-create.json', { denied: [`${R}/shop/agent:3 (containers agent)`, 'registry.k8s.io/kube-proxy:v1.31.0 (containers kube-proxy-shim)'], passed: [] }],
    ['job-create.json', { denied: [`${R}/shop/migrate:1.4 (containers migrate)`], passed: [] }],
    ['cronjob-create.json', { denied: [`${R}/shop/report:2.0 (containers report)`], passed: [] }],
    // kubectl debug: only the new ephemeral container is judged; the Pod's own containers are unchanged from oldObject.
    ['pod-ephemeralcontainers-update.json', { denied: ['busybox:1.36 (ephemeralContainers debugger-7xq2p)'], passed: ['shop/web:1.4'] }],
    ['pod-delete.json', { denied: [], passed: [] }],
  ];
  for (const [name, { denied, passed }] of expectations) {
    const review = await fixture(name);
    const { status, body } = await post('validate', review);
    assert.equal(status, 200, name);
    assert.equal(body.apiVersion, 'admission.k8s.io/v1');
    assert.equal(body.kind, 'AdmissionReview');
    assert.equal(body.response.uid, review.request.uid, `${name}: response.uid is request.uid`);
    assert.equal(body.response.allowed, denied.length === 0, `${name}: ${denialOf(body)}`);
    const message = denialOf(body);
    if (denied.length) assert.equal(body.response.status?.code, 403);
    for (const d of denied) assert.ok(message.includes(`${d}: `), `${name}: expected a denial of ${d} in: ${message}`);
    assert.equal(message.split('; ').length, denied.length || 1, `${name}: one reason per denied image: ${message}`);
    for (const p of passed) assert.ok(!message.includes(p), `${name}: ${p} must pass: ${message}`);
  }
});

test('tag mode: denials say what to do, or name the job patching the image', async () => {
  const { post, queue } = setup();
  const review = await fixture('job-create.json');
  const fresh = denialOf((await post('validate', review)).body);
  assert.match(fresh, new RegExp(`not patched by patchd: push it to ${R} so patchd patches it, or use ${R}/shop/migrate:1\\.4-patched`));

  const id = await recordJob(queue, { repository: 'shop/migrate', tag: '1.4' });
  assert.match(denialOf((await post('validate', review)).body), new RegExp(`patch pending: job ${id} \\(queued\\)`));
  assert.equal((await queue.claim())?.id, id);
  assert.match(denialOf((await post('validate', review)).body), new RegExp(`patch pending: job ${id} \\(running\\)`));
  await queue.fail(id, 'NETWORK: mirror unreachable', undefined);
  assert.match(denialOf((await post('validate', review)).body), new RegExp(`patching failed: job ${id} \\(dead: NETWORK: mirror unreachable\\)`));

  // Unconfigured registries: push to one patchd patches.
  const pod = await fixture('pod-create.json');
  assert.match(denialOf((await post('validate', pod)).body), /nginx \(containers proxy\): not patched by patchd: push it to registry\.example\.com:5000 so patchd patches it, or use docker\.io\/library\/nginx:latest-patched/);
});

test('tag mode uses each registry\'s own suffix (joined with "-", as Copa\'s --tag-suffix)', async () => {
  const config = `
admission: { certFile: a, keyFile: b }
registries:
  shop: { url: "http://127.0.0.1:9", hosts: ["${R}"], policy: { tagSuffix: hardened } }
`;
  const app = createAdmissionApp({ config: loadConfig({}, config), queue: openSqliteQueue(':memory:'), registries: new Map(), logger: silentLogger(), lookups: unreachable });
  const review = await fixture('job-create.json');
  const withImage = (image: string) => {
    const r = structuredClone(review);
    (get(r.request.object, '/spec/template/spec/containers/0') as { image: string }).image = image;
    return Promise.resolve(app.request('/admission/validate', { method: 'POST', body: JSON.stringify(r) })).then((res) => res.json() as Promise<Answer>);
  };
  assert.equal((await withImage(`${R}/shop/migrate:1.4-hardened`)).response.allowed, true);
  assert.equal((await withImage(`${R}/shop/migrate:1.4-hardened-3`)).response.allowed, true);
  const denied = await withImage(`${R}/shop/migrate:1.4-patched`);
  assert.equal(denied.response.allowed, false);
  assert.match(denialOf(denied), /or use registry\.example\.com:5000\/shop\/migrate:1\.4-patched-hardened/);
});

test('exemptions: by namespace, by registry host, by image glob (* within a segment, ** across)', async () => {
  const daemonset = await fixture('daemonset-create.json');
  const inKubeSystem = { ...daemonset, request: { ...daemonset.request, namespace: 'kube-system' } };
  const byNamespace = setup('exempt: { namespaces: [kube-system] }');
  assert.equal((await byNamespace.post('validate', inKubeSystem)).body.response.allowed, true);
  assert.equal((await byNamespace.post('validate', daemonset)).body.response.allowed, false);

  const byRegistry = setup('exempt: { registries: [registry.k8s.io] }');
  const message = denialOf((await byRegistry.post('validate', daemonset)).body);
  assert.ok(!message.includes('kube-proxy'), message);
  assert.ok(message.includes('shop/agent:3'), message);

  const hub = setup('exempt: { registries: [index.docker.io] }');
  const m0 = denialOf((await hub.post('validate', await fixture('pod-create.json'))).body);
  assert.ok(!m0.includes('nginx'), `nginx is docker.io/library/nginx, and index.docker.io is docker.io: ${m0}`);

  const deployment = await fixture('deployment-create.json');
  const oneSegment = setup('exempt: { images: ["docker.io/*/busybox", "registry.example.com:5000/*"] }');
  const m1 = denialOf((await oneSegment.post('validate', deployment)).body);
  assert.ok(!m1.includes('busybox'), `docker.io/*/busybox exempts docker.io/library/busybox: ${m1}`);
  assert.ok(m1.includes('shop/web:1.4'), `registry.example.com:5000/* does not reach shop/web: ${m1}`);
  const across = setup('exempt: { images: ["registry.example.com:5000/**", "docker.io/library/busybox:1.*"] }');
  assert.equal((await across.post('validate', deployment)).body.response.allowed, true, 'a ** glob and a glob on the tag');
});

test('audit mode (enforce: false): allowed, every denial as a warning', async () => {
  const { post } = setup('enforce: false');
  const { body } = await post('validate', await fixture('pod-create.json'));
  assert.equal(body.response.allowed, true);
  assert.equal(body.response.status, undefined);
  assert.equal(body.response.warnings?.length, 2, JSON.stringify(body.response.warnings));
  assert.ok(body.response.warnings?.every((w) => w.startsWith('patchd (audit, admission.enforce is false) would deny ')));
  assert.ok(body.response.warnings?.some((w) => w.includes(`${R}/shop/web:1.4 (containers web): not patched by patchd`)));
});

test('mutate: a JSONPatch replace at each container\'s pointer, for every kind; unpatched and foreign images stay', async () => {
  const registry = fakeRegistry();
  const { post, queue } = setup('', { lookups: registry });
  for (const [repository, tag] of [['shop/web', '1.4'], ['shop/db', '16'], ['shop/agent', '3'], ['shop/migrate', '1.4'], ['shop/report', '2.0'], ['shop/debug', '1.0']] as const) {
    await recordPatched(queue, repository, tag);
  }
  const patchedImage = (repository: string, tag: string) => `${R}/${repository}:${tag}-patched@${digestOf(`${repository}:${tag}-patched`)}`;
  const debugged = await fixture('pod-ephemeralcontainers-update.json');
  (get(debugged.request.object, '/spec/ephemeralContainers/0') as { image: string }).image = `${R}/shop/debug:1.0`;

  const cases: [string | Review, Record<string, string>][] = [
    ['pod-create.json', { '/spec/containers/0/image': patchedImage('shop/web', '1.4'), '/spec/containers/1/image': 'nginx', '/spec/initContainers/0/image': `${R}/shop/migrate:1.4-patched` }],
    ['deployment-create.json', { '/spec/template/spec/containers/0/image': patchedImage('shop/web', '1.4'), '/spec/template/spec/containers/1/image': 'docker.io/library/busybox:1.36' }],
    ['statefulset-create.json', { '/spec/template/spec/containers/0/image': patchedImage('shop/db', '16'), '/spec/template/spec/initContainers/0/image': `${R}/shop/db-init:16-patched` }],
    ['daemonset-create.json', { '/spec/template/spec/containers/0/image': patchedImage('shop/agent', '3'), '/spec/template/spec/containers/1/image': 'registry.k8s.io/kube-proxy:v1.31.0' }],
    ['job-create.json', { '/spec/template/spec/containers/0/image': patchedImage('shop/migrate', '1.4') }],
    ['cronjob-create.json', { '/spec/jobTemplate/spec/template/spec/containers/0/image': patchedImage('shop/report', '2.0') }],
    [debugged, { '/spec/ephemeralContainers/0/image': patchedImage('shop/debug', '1.0'), '/spec/containers/0/image': `${R}/shop/web:1.4` }],
  ];
  for (const [which, expected] of cases) {
    const review = typeof which === 'string' ? await fixture(which) : which;
    const { status, body } = await post('mutate', review);
    assert.equal(status, 200);
    assert.equal(body.response.uid, review.request.uid);
    assert.equal(body.response.allowed, true);
    assert.equal(body.response.patchType, 'JSONPatch', `${String(typeof which === 'string' ? which : 'ephemeral')}: ${JSON.stringify(body.response)}`);
    const patched = applyPatch(review.request.object, body.response.patch!);
    for (const [pointer, image] of Object.entries(expected)) assert.equal(get(patched, pointer), image, `${String(which)} ${pointer}`);
  }
  registry.asked.length = 0;
  await post('mutate', debugged);
  assert.deepEqual(registry.asked, ['shop/shop/debug:1.0'], 'the containers an UPDATE keeps are not looked up again');

  // Nothing patched: no patch at all.
  const { body } = await post('mutate', await fixture('replicaset-create.json'));
  assert.deepEqual(body.response, { uid: (await fixture('replicaset-create.json')).request.uid, allowed: true });
});

test('mutate: an image by digest is rewritten from the job for that digest; a pending job leaves it (fail-open) or denies (failOpen: false)', async () => {
  const registry = fakeRegistry();
  const open = setup('', { lookups: registry });
  await recordPatched(open.queue, 'shop/migrate', '1.4');
  const review = await fixture('job-create.json');
  const original = digestOf('shop/migrate:1.4');
  (get(review.request.object, '/spec/template/spec/containers/0') as { image: string }).image = `${R}/shop/migrate:1.4@${original}`;
  const { body } = await open.post('mutate', review);
  assert.equal(get(applyPatch(review.request.object, body.response.patch!), '/spec/template/spec/containers/0/image'), `${R}/shop/migrate:1.4-patched@${digestOf('shop/migrate:1.4-patched')}`);
  assert.ok(!registry.asked.length, 'a digest needs no HEAD');

  const pending = await fixture('cronjob-create.json');
  const id = await recordJob(open.queue, { repository: 'shop/report', tag: '2.0' });
  const left = await open.post('mutate', pending);
  assert.deepEqual(left.body.response, { uid: pending.request.uid, allowed: true }, 'fail-open: left alone');

  const closed = setup('failOpen: false', { lookups: fakeRegistry() });
  const closedId = await recordJob(closed.queue, { repository: 'shop/report', tag: '2.0' });
  const denied = await closed.post('mutate', pending);
  assert.equal(denied.body.response.allowed, false);
  assert.match(denialOf(denied.body), new RegExp(`${R}/shop/report:2\\.0 \\(containers report\\): patch pending: job ${closedId} \\(queued\\)`));
  assert.notEqual(id, closedId);
});

test('malformed reviews get 400 with the reason; only POST /admission/{validate,mutate} exist; the plain app serves none of it', async () => {
  const { post, app } = setup();
  const notJson = await post('validate', '{"apiVersion":');
  assert.equal(notJson.status, 400);
  assert.match(notJson.body.error!, /not JSON/);
  assert.equal(notJson.body.code, 'REVIEW_INVALID');

  const review = await fixture('pod-create.json');
  const cases: [unknown, RegExp][] = [
    [{ ...review, apiVersion: 'admission.k8s.io/v1beta1' }, /admission\.k8s\.io\/v1/],
    [{ ...review, kind: 'Pod' }, /kind/],
    [{ apiVersion: review.apiVersion, kind: review.kind }, /request/],
    [{ ...review, request: { ...review.request, uid: undefined } }, /uid/],
    [{ ...review, request: { ...review.request, operation: 'PATCH' } }, /operation/],
    [{ ...review, request: { ...review.request, object: 'a pod' } }, /object/],
    [{ ...review, request: { ...review.request, object: { ...review.request.object, spec: { containers: 'web' } } } }, /\/spec\/containers must be a list of containers/],
    [{ ...review, request: { ...review.request, object: { ...review.request.object, spec: { containers: [{ name: 'web', image: 42 }] } } } }, /\/spec\/containers/],
    [[], /expected object/],
  ];
  for (const [body, why] of cases) {
    for (const webhook of ['validate', 'mutate'] as const) {
      const res = await post(webhook, body);
      assert.equal(res.status, 400, `${webhook} ${JSON.stringify(body).slice(0, 80)}`);
      assert.match(res.body.error!, why);
    }
  }
  assert.equal((await app.request('/admission/validate')).status, 404, 'GET');
  assert.equal((await app.request('/admission/other', { method: 'POST', body: '{}' })).status, 404);
  assert.equal((await app.request('/healthz')).status, 404, 'only the admission routes on this listener');

  const plain = createApp({ config: loadConfig({}, 'registries: {}'), queue: openSqliteQueue(':memory:'), logger: silentLogger(), metrics: new Metrics() });
  assert.equal((await plain.request('/admission/validate', { method: 'POST', body: JSON.stringify(review) })).status, 404);
});

test('objects patchd does not review, DELETE and CONNECT are allowed untouched', async () => {
  const { post } = setup();
  const service = {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid: 'a1', kind: { group: '', version: 'v1', kind: 'Service' }, resource: { group: '', version: 'v1', resource: 'services' }, operation: 'CREATE', object: { spec: { containers: [{ image: 'nginx' }] } } },
  };
  assert.deepEqual((await post('validate', service)).body.response, { uid: 'a1', allowed: true });
  const exec = { ...service, request: { ...service.request, uid: 'a2', kind: { group: '', version: 'v1', kind: 'PodExecOptions' }, operation: 'CONNECT', subResource: 'exec' } };
  assert.deepEqual((await post('validate', exec)).body.response, { uid: 'a2', allowed: true });
  const deleted = await fixture('pod-delete.json');
  assert.deepEqual((await post('mutate', deleted)).body.response, { uid: deleted.request.uid, allowed: true });
});

test('an invalid image is denied with the grammar\'s reason; metrics count reviews by outcome', async () => {
  const { post, metrics } = setup();
  const review = await fixture('job-create.json');
  (get(review.request.object, '/spec/template/spec/containers/0') as { image: string }).image = 'Registry.Example.com/Shop/App';
  const { body } = await post('validate', review);
  assert.equal(body.response.allowed, false);
  assert.match(denialOf(body), /invalid image reference "Registry\.Example\.com\/Shop\/App": repository name must be lowercase/);
  await post('validate', await fixture('replicaset-create.json'));
  const rendered = metrics.render();
  assert.match(rendered, /patchd_admission_reviews_total\{outcome="denied",webhook="validate"\} 1/);
  assert.match(rendered, /patchd_admission_reviews_total\{outcome="allowed",webhook="validate"\} 1/);
});

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, test } from 'node:test';
import { Agent, request } from 'undici';
import { Annotation } from '../../src/publish/annotations.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { pushTinyImage } from '../harness/tiny-image.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// `patchd serve` with an admission section: AdmissionReviews over HTTPS to
// the second listener (a self-signed certificate made by openssl, trusted by
// the client), verified mode against a real registry and the job store that
// serve itself opens, with an image serve's own worker really patched; the
// plain listener serves no admission route; the certificate is re-read when
// rotated; a missing certificate stops start-up.

const repoRoot = new URL('../..', import.meta.url).pathname;
const R = 'registry.example.com:5000';

let work: TempDir;
let registry: RunningRegistry;
let patchd: ChildProcess;
let exited: Promise<number | null>;
let plainUrl: string;
let admissionPort: number;
let admissionUrl: string;
let certFile: string;
let keyFile: string;
let trusted: Agent;
const digests: Record<string, string> = {};

/** A self-signed certificate for 127.0.0.1 and localhost (EC P-256: quick to make). */
async function makeCertificate(dir: string, name: string): Promise<{ cert: string; key: string; pem: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=patchd-admission-${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  return { cert, key, pem: await readFile(cert, 'utf8') };
}

let first: { cert: string; key: string; pem: string };

before(async () => {
  work = await tmpDir('patchd-serve-admission');
  // The registry notifies serve of pushes (it retries until serve is up): serve's worker patches them for real.
  const plainPort = await freePort();
  registry = await startRegistry({ notifications: { url: `http://127.0.0.1:${plainPort}/webhooks/distribution`, headers: { Authorization: ['Bearer s3cret'] } } });
  digests['web'] = (await pushTinyImage({ registryUrl: registry.url, repository: 'shop/web', tag: '1.4', content: 'web 1.4' })).digest;
  digests['web-patched'] = (await pushTinyImage({
    registryUrl: registry.url, repository: 'shop/web', tag: '1.4-patched', content: 'web 1.4 patched',
    annotations: { [Annotation.baseName]: `${registry.host}/shop/web:1.4`, [Annotation.baseDigest]: digests['web'], [Annotation.created]: '2026-11-28T00:00:00Z', [Annotation.patched]: 'true' },
  })).digest;
  digests['lookalike'] = (await pushTinyImage({ registryUrl: registry.url, repository: 'shop/api', tag: '2.0-patched', content: 'not patchd output' })).digest;

  // The job the worker would have recorded for shop/web:1.4, in the store serve opens.
  const dataDir = join(work.path, 'data');
  const queue = openSqliteQueue(join(dataDir, 'queue.sqlite'));
  const { id } = (await queue.enqueue({ registry: 'local', repository: 'shop/web', tag: '1.4', digest: digests['web'], source: 'distribution', trigger: 'push' }));
  await queue.claim();
  await queue.succeed(id, 'succeeded', { status: 'patched', target: `${registry.host}/shop/web:1.4-patched`, digest: digests['web-patched'], sourceDigest: digests['web'] });
  await queue.close();

  first = await makeCertificate(work.path, 'first');
  certFile = join(work.path, 'tls.crt');
  keyFile = join(work.path, 'tls.key');
  await writeFile(certFile, first.pem);
  await writeFile(keyFile, await readFile(first.key));
  admissionPort = await freePort();
  admissionUrl = `https://127.0.0.1:${admissionPort}`;
  trusted = new Agent({ connect: { ca: first.pem } });

  const server = await startPatchdServe({
    dir: work.path,
    port: plainPort,
    config: () => [
      `dataDir: ${JSON.stringify(dataDir)}`,
      'worker: { concurrency: 1, retryBaseMs: 500 }',
      'admission:',
      '  host: 127.0.0.1',
      `  port: ${admissionPort}`,
      `  certFile: ${JSON.stringify(certFile)}`,
      `  keyFile: ${JSON.stringify(keyFile)}`,
      '  reloadSeconds: 1',
      '  mode: verified',
      '  cacheTtlSeconds: 1',
      'registries:',
      '  local:',
      `    url: ${registry.url}`,
      `    hosts: ["${R}"]`,
      '    webhookSecret: s3cret',
    ],
    logs: 'inherit',
  });
  patchd = server.child;
  exited = server.exited;
  plainUrl = server.url;
  // The plain listener answers /healthz before the TLS one may: wait for it too.
  for (let i = 0; !(await probe(trusted)); i++) {
    if (i > 100) throw new Error('the admission listener did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  if (patchd && patchd.exitCode === null) patchd.kill('SIGKILL');
  await trusted?.close();
  await registry?.stop();
  await work?.remove();
});

function probe(dispatcher: Agent): Promise<boolean> {
  return request(`${admissionUrl}/admission/validate`, { method: 'POST', body: '{}', dispatcher }).then(async (r) => { await r.body.dump(); return r.statusCode === 400; }, () => false);
}

let uid = 0;
function podReview(images: readonly string[]) {
  return {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid: `e2e-${++uid}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop', operation: 'CREATE', userInfo: { username: 'kubernetes-admin' },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'shop' }, spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } },
      oldObject: null, dryRun: false,
    },
  };
}

interface Answer { apiVersion: string; kind: string; response: { uid: string; allowed: boolean; status?: { code: number; message: string }; patchType?: string; patch?: string; warnings?: string[] } }

async function admit(webhook: 'validate' | 'mutate', images: readonly string[]): Promise<{ review: ReturnType<typeof podReview>; answer: Answer }> {
  const review = podReview(images);
  const res = await request(`${admissionUrl}/admission/${webhook}`, {
    method: 'POST', body: JSON.stringify(review), headers: { 'content-type': 'application/json' }, dispatcher: trusted,
  });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /application\/json/);
  const answer = await res.body.json() as Answer;
  assert.equal(answer.apiVersion, 'admission.k8s.io/v1');
  assert.equal(answer.kind, 'AdmissionReview');
  assert.equal(answer.response.uid, review.request.uid);
  return { review, answer };
}

test('validate over HTTPS: patchd\'s output passes, the original and a look-alike are denied with what to do', async () => {
  const { answer } = await admit('validate', [`${R}/shop/web:1.4-patched`, `${R}/shop/web:1.4`, `${R}/shop/api:2.0-patched`]);
  assert.equal(answer.response.allowed, false);
  assert.equal(answer.response.status?.code, 403);
  const message = answer.response.status?.message ?? '';
  assert.ok(!message.includes('(containers c0)'), message);
  assert.match(message, new RegExp(`${R}/shop/web:1\\.4 \\(containers c1\\): patched by patchd as ${registry.host}/shop/web:1\\.4-patched@${digests['web-patched']} \\(job [0-9a-f-]+\\): use that image`));
  assert.match(message, /shop\/api:2\.0-patched \(containers c2\): tagged 2\.0-patched but not patchd's output/);
  const allowed = await admit('validate', [`${R}/shop/web:1.4-patched@${digests['web-patched']}`]);
  assert.deepEqual(allowed.answer.response, { uid: allowed.review.request.uid, allowed: true });
});

test('mutate over HTTPS: repo:tag becomes repo:tag-patched@digest from serve\'s own job store', async () => {
  const { answer } = await admit('mutate', [`${R}/shop/web:1.4`, 'nginx:1.27']);
  assert.equal(answer.response.allowed, true);
  assert.equal(answer.response.patchType, 'JSONPatch');
  assert.deepEqual(JSON.parse(Buffer.from(answer.response.patch!, 'base64').toString()), [
    { op: 'replace', path: '/spec/containers/0/image', value: `${R}/shop/web:1.4-patched@${digests['web-patched']}` },
  ]);
});

interface Job { id: string; repository: string; digest?: string; status: string; result?: { target?: string; digest?: string } }

test('an image serve really patched (registry notification, worker, job store) passes verified mode and is what mutate rewrites to', { timeout: 10 * 60_000 }, async () => {
  const pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' });
  const original = `${R}/fixtures/bookworm:main`;
  let job: Job | undefined;
  let sawPending = false;
  for (let i = 0; i < 1200; i++) {
    const { jobs } = await (await fetch(`${plainUrl}/jobs`)).json() as { jobs: Job[] };
    job = jobs.find((j) => j.repository === 'fixtures/bookworm' && j.digest === pushed.digest);
    if (job && ['succeeded', 'skipped', 'dead'].includes(job.status)) break;
    if (job && !sawPending) {
      // While the worker has it, the denial names the job (or, if it finished meanwhile, its output).
      const { answer } = await admit('validate', [original]);
      assert.match(answer.response.status?.message ?? '', new RegExp(`patch pending: job ${job.id} \\((queued|running)\\)|patched by patchd as`));
      sawPending = true;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(job?.status, 'succeeded', JSON.stringify(job));
  const patched = job!.result!.digest!;
  assert.equal(job!.result!.target, `${registry.host}/fixtures/bookworm:main-patched`);
  await new Promise((r) => setTimeout(r, 1200)); // past cacheTtlSeconds: 1

  const { answer } = await admit('validate', [`${R}/fixtures/bookworm:main-patched`, `${R}/fixtures/bookworm@${patched}`, original]);
  const message = answer.response.status?.message ?? '';
  assert.ok(!message.includes('(containers c0)') && !message.includes('(containers c1)'), message);
  assert.match(message, new RegExp(`${original} \\(containers c2\\): patched by patchd as ${registry.host}/fixtures/bookworm:main-patched@${patched} \\(job ${job!.id}\\): use that image$`));

  const mutated = await admit('mutate', [original]);
  assert.deepEqual(JSON.parse(Buffer.from(mutated.answer.response.patch!, 'base64').toString()), [
    { op: 'replace', path: '/spec/containers/0/image', value: `${R}/fixtures/bookworm:main-patched@${patched}` },
  ]);
});

test('the listeners are apart: the plain one serves no /admission/*, the TLS one nothing else, and only over TLS', async () => {
  const plain = await fetch(`${plainUrl}/admission/validate`, { method: 'POST', body: JSON.stringify(podReview(['nginx'])) });
  assert.equal(plain.status, 404);
  assert.equal((await fetch(`${plainUrl}/healthz`)).status, 200);
  const other = await request(`${admissionUrl}/healthz`, { dispatcher: trusted });
  await other.body.dump();
  assert.equal(other.statusCode, 404);
  const webhook = await request(`${admissionUrl}/webhooks/distribution`, { method: 'POST', body: '{}', dispatcher: trusted });
  await webhook.body.dump();
  assert.equal(webhook.statusCode, 404);
  await assert.rejects(fetch(`http://127.0.0.1:${admissionPort}/admission/validate`, { method: 'POST', body: '{}' }), 'plain HTTP to the TLS port');
  const untrusting = new Agent();
  await assert.rejects(request(`${admissionUrl}/admission/validate`, { method: 'POST', body: '{}', dispatcher: untrusting }), /self[- ]signed|certificate/i);
  await untrusting.close();
});

test('a rotated certificate is served without a restart', { timeout: 60_000 }, async () => {
  const second = await makeCertificate(work.path, 'second');
  // As a Secret volume update does: new files swapped in whole (key first, so a half-rotated pair is seen and skipped).
  await writeFile(`${keyFile}.new`, await readFile(second.key));
  await rename(`${keyFile}.new`, keyFile);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await servedFingerprint(), new X509Certificate(first.pem).fingerprint256, 'a key without its certificate is not served');
  await writeFile(`${certFile}.new`, second.pem);
  await rename(`${certFile}.new`, certFile);
  const wanted = new X509Certificate(second.pem).fingerprint256;
  let served = '';
  for (let i = 0; i < 100 && served !== wanted; i++) {
    await new Promise((r) => setTimeout(r, 200));
    served = await servedFingerprint();
  }
  assert.equal(served, wanted);
  const rotated = new Agent({ connect: { ca: second.pem } });
  assert.ok(await probe(rotated), 'a client trusting the new certificate gets answers');
  await trusted.close();
  trusted = rotated;
});

function servedFingerprint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: admissionPort, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      socket.end();
    });
    socket.on('error', reject);
  });
}

test('SIGTERM stops both listeners and the process exits 0', async () => {
  patchd.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.equal(await probe(trusted), false);
});

test('a missing or unusable certificate stops `patchd serve` at start-up with a CONFIG_ error, exit 1', async () => {
  const port = await freePort();
  const other = await makeCertificate(work.path, 'other');
  const cases: [string, string, RegExp][] = [
    [join(work.path, 'absent.crt'), first.key, /admission\.certFile .*absent\.crt: ENOENT.*\[CONFIG_UNREADABLE\]/],
    [first.cert, join(work.path, 'absent.key'), /admission\.keyFile .*absent\.key: ENOENT.*\[CONFIG_UNREADABLE\]/],
    [first.cert, other.key, /do not make a TLS certificate and key: .*\[CONFIG_INVALID\]/],
  ];
  for (const [cert, key, expected] of cases) {
    const config = join(work.path, `broken-${port}.yaml`);
    await writeFile(config, [
      `server: { host: 127.0.0.1, port: ${port} }`,
      `dataDir: ${JSON.stringify(join(work.path, 'broken-data'))}`,
      `admission: { host: 127.0.0.1, port: ${await freePort()}, certFile: ${JSON.stringify(cert)}, keyFile: ${JSON.stringify(key)} }`,
      'registries: {}',
    ].join('\n'));
    const child = spawn('node', [join(repoRoot, 'bin/patchd.js'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, expected);
    assert.equal(await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false), false, 'the plain listener never started');
  }
});

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { goTool } from '../harness/go-tools.js';
import { startKube, type Kube } from '../harness/kube.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { pushTinyImage } from '../harness/tiny-image.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// patchd's admission webhooks called by a real kube-apiserver (v1.37, etcd
// behind it): the shipped webhook configurations (deploy/kustomize/base),
// pointed at `patchd serve` on loopback by URL instead of by Service (no
// kube-proxy here), with failurePolicy Fail so an unreachable patchd fails
// the test instead of letting objects through. The image patchd rewrites to
// is one serve's own worker really patched after the registry's push
// notification.

const repoRoot = new URL('../..', import.meta.url).pathname;

let work: TempDir;
let registry: RunningRegistry;
let patchd: RunningPatchd;
let kube: Kube;
let host: string;
let patched: { digest: string; target: string };

interface Job { id: string; repository: string; digest?: string; status: string; lastError?: string; result?: { target?: string; digest?: string } }

/** The shipped webhook configurations, calling `baseUrl` + each webhook's service path, trusting `caPem`. */
async function webhookConfigurations(baseUrl: string, caPem: string): Promise<string> {
  const kubectl = await goTool('kubectl');
  const rendered = (await run(kubectl, ['kustomize', join(repoRoot, 'deploy/kustomize/base')])).stdout;
  const out: string[] = [];
  for (const doc of parseAllDocuments(rendered)) {
    const object = doc.toJS() as { kind?: string; metadata?: { annotations?: Record<string, string> }; webhooks?: { clientConfig: { service?: { path?: string }; url?: string; caBundle?: string }; failurePolicy?: string }[] };
    if (object.kind !== 'MutatingWebhookConfiguration' && object.kind !== 'ValidatingWebhookConfiguration') continue;
    delete object.metadata?.annotations; // cert-manager's CA injection: the bundle is given here
    for (const webhook of object.webhooks ?? []) {
      const path = webhook.clientConfig.service?.path;
      assert.ok(path, `${object.kind} names a service path: ${JSON.stringify(webhook.clientConfig)}`);
      webhook.clientConfig = { url: `${baseUrl}${path}`, caBundle: Buffer.from(caPem).toString('base64') };
      webhook.failurePolicy = 'Fail';
    }
    out.push(JSON.stringify(object));
  }
  assert.equal(out.length, 2, `deploy/kustomize/base has a mutating and a validating configuration, found ${out.length}`);
  return out.join('\n---\n');
}

function pod(namespace: string, name: string, containers: Record<string, string>, initContainers: Record<string, string> = {}) {
  const list = (m: Record<string, string>) => Object.entries(m).map(([n, image]) => ({ name: n, image }));
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace },
    spec: { containers: list(containers), ...(Object.keys(initContainers).length ? { initContainers: list(initContainers) } : {}) },
  };
}

function deployment(namespace: string, name: string, image: string) {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace },
    spec: {
      replicas: 1, selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }] } },
    },
  };
}

async function create(object: object): Promise<{ code: number; stdout: string; stderr: string }> {
  return kube.kubectl(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(object), allowFailure: true });
}

before(async () => {
  work = await tmpDir('patchd-kube-admission');
  const plainPort = await freePort();
  registry = await startRegistry({ notifications: { url: `http://127.0.0.1:${plainPort}/webhooks/distribution`, headers: { Authorization: ['Bearer s3cret'] } } });
  host = registry.host;

  // A self-signed serving certificate for 127.0.0.1: the caBundle the API server trusts.
  const certFile = join(work.path, 'tls.crt');
  const keyFile = join(work.path, 'tls.key');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', '/CN=patchd.patchd-system.svc', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:patchd.patchd-system.svc']);
  const admissionPort = await freePort();
  patchd = await startPatchdServe({
    dir: work.path,
    port: plainPort,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      'worker: { concurrency: 1, retryBaseMs: 500 }',
      'admission:',
      '  host: 127.0.0.1',
      `  port: ${admissionPort}`,
      `  certFile: ${JSON.stringify(certFile)}`,
      `  keyFile: ${JSON.stringify(keyFile)}`,
      '  mode: tag',
      '  cacheTtlSeconds: 1',
      '  exempt: { namespaces: [kube-system, patchd-system, sandbox] }',
      'registries:',
      '  local:',
      `    url: ${registry.url}`,
      '    webhookSecret: s3cret',
    ],
    logs: 'ignore',
  });

  const started = startKube();
  // The registry tells serve about this push; serve's worker patches it for real.
  const pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: host, repository: 'shop/web', tag: '1.4' });
  await pushTinyImage({ registryUrl: registry.url, repository: 'shop/cron', tag: '2.0-patched', content: 'cron 2.0 patched' });
  kube = await started;
  await kube.createNamespace('shop');
  await kube.createNamespace('sandbox');
  await kube.kubectl(['apply', '-f', '-'], { input: await webhookConfigurations(`https://127.0.0.1:${admissionPort}`, await readFile(certFile, 'utf8')) });

  let job: Job | undefined;
  for (let i = 0; i < 1200; i++) {
    const { jobs } = await (await fetch(`${patchd.url}/jobs`)).json() as { jobs: Job[] };
    job = jobs.find((j) => j.repository === 'shop/web' && j.digest === pushed.digest);
    if (job && ['succeeded', 'skipped', 'dead'].includes(job.status)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(job?.status, 'succeeded', `serve's worker patched shop/web:1.4: ${JSON.stringify(job)}`);
  patched = { digest: job!.result!.digest!, target: job!.result!.target! };
  assert.equal(patched.target, `${host}/shop/web:1.4-patched`, 'the patched tag');
  await new Promise((r) => setTimeout(r, 1100)); // past cacheTtlSeconds: an earlier "not patched" answer is not reused

  // The API server picks webhook configurations up from its informer: wait until the validate webhook is in force.
  const probe = pod('shop', 'probe', { app: `${host}/shop/unknown:1.0` });
  for (let i = 0; ; i++) {
    const result = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(probe), allowFailure: true });
    if (result.code !== 0 && result.stderr.includes('validate.patchd.io')) break;
    assert.ok(i < 100, `the validate webhook did not take effect in 10 s: ${result.stderr || result.stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  await kube?.stop();
  await patchd?.stop();
  await registry?.stop();
  await work?.remove();
});

test('a Deployment whose image patchd patched is stored with the patched digest in its pod template', async () => {
  const result = await create(deployment('shop', 'web', `${host}/shop/web:1.4`));
  assert.equal(result.code, 0, `the Deployment is admitted: ${result.stderr}`);
  const expected = `${host}/shop/web:1.4-patched@${patched.digest}`;
  const created = JSON.parse(result.stdout) as { spec: { template: { spec: { containers: { image: string }[] } } } };
  assert.equal(created.spec.template.spec.containers[0]!.image, expected, 'the create answer carries the rewritten image');
  const stored = JSON.parse((await kube.kubectl(['get', 'deployment', 'web', '-n', 'shop', '-o', 'json'])).stdout) as typeof created;
  assert.equal(stored.spec.template.spec.containers[0]!.image, expected, 'etcd holds the rewritten image');
});

test('a Pod naming the original image is rewritten too, and a Pod already on the patched tag is left as it is', async () => {
  const rewritten = await create(pod('shop', 'web', { app: `${host}/shop/web:1.4` }));
  assert.equal(rewritten.code, 0, `admitted: ${rewritten.stderr}`);
  const podSpec = (JSON.parse(rewritten.stdout) as { spec: { containers: { image: string }[] } }).spec;
  assert.equal(podSpec.containers[0]!.image, `${host}/shop/web:1.4-patched@${patched.digest}`, 'rewritten to the patched digest');

  const untouched = await create(pod('shop', 'cron', { app: `${host}/shop/cron:2.0-patched` }));
  assert.equal(untouched.code, 0, `a -patched tag passes tag mode: ${untouched.stderr}`);
  assert.equal((JSON.parse(untouched.stdout) as { spec: { containers: { image: string }[] } }).spec.containers[0]!.image, `${host}/shop/cron:2.0-patched`, 'not rewritten');
});

test('a Pod with an image patchd has not patched is denied with a message naming the image and what to do', async () => {
  const image = `${host}/shop/unknown:1.0`;
  const result = await create(pod('shop', 'unknown', { app: image }));
  assert.notEqual(result.code, 0, 'the Pod is refused');
  assert.match(result.stderr, /admission webhook "validate\.patchd\.io" denied the request/, result.stderr);
  assert.ok(result.stderr.includes(image), `the message names ${image}: ${result.stderr}`);
  assert.match(result.stderr, /not patched by patchd: push it to .* so patchd patches it, or use .*:1\.0-patched/, result.stderr);
  const missing = await kube.kubectl(['get', 'pod', 'unknown', '-n', 'shop'], { allowFailure: true });
  assert.notEqual(missing.code, 0, 'nothing was stored');
});

test('one unpatched init container is enough to deny, and it is the one named', async () => {
  const result = await create(pod('shop', 'mixed', { app: `${host}/shop/cron:2.0-patched` }, { setup: 'busybox:1.36' }));
  assert.notEqual(result.code, 0, 'refused');
  assert.match(result.stderr, /busybox:1\.36 \(initContainers setup\): not patched by patchd: .* or use docker\.io\/library\/busybox:1\.36-patched/, result.stderr);
  assert.ok(!result.stderr.includes('shop/cron'), `the patched container is not blamed: ${result.stderr}`);
});

test('a CronJob is judged by its job template: unpatched denied, patched admitted', async () => {
  const cronJob = (name: string, image: string) => ({
    apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name, namespace: 'shop' },
    spec: { schedule: '0 * * * *', jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'job', image }] } } } } },
  });
  const denied = await create(cronJob('nightly', `${host}/shop/unknown:1.0`));
  assert.notEqual(denied.code, 0, 'the unpatched CronJob is refused');
  assert.match(denied.stderr, /validate\.patchd\.io/, denied.stderr);
  const admitted = await create(cronJob('hourly', `${host}/shop/cron:2.0-patched`));
  assert.equal(admitted.code, 0, `the patched CronJob is admitted: ${admitted.stderr}`);
});

test('an exempt namespace is admitted with the unpatched image, untouched', async () => {
  const image = `${host}/shop/unknown:1.0`;
  const result = await create(pod('sandbox', 'unknown', { app: image }));
  assert.equal(result.code, 0, `admitted in sandbox (exempt in patchd's config): ${result.stderr}`);
  assert.equal((JSON.parse(result.stdout) as { spec: { containers: { image: string }[] } }).spec.containers[0]!.image, image, 'not rewritten');
});

test('every decision above came from patchd over TLS: its metrics count the API server\'s reviews by outcome', async () => {
  const metrics = await (await fetch(`${patchd.url}/metrics`)).text();
  const count = (webhook: string, outcome: string) => {
    const line = metrics.split('\n').find((l) => l.startsWith('patchd_admission_reviews_total{') && l.includes(`webhook="${webhook}"`) && l.includes(`outcome="${outcome}"`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  assert.ok(count('mutate', 'patched') >= 2, `mutate rewrote the Deployment and the Pod:\n${metrics}`);
  assert.ok(count('validate', 'denied') >= 3, `validate denied the unpatched Pod, init container and CronJob:\n${metrics}`);
  assert.ok(count('validate', 'allowed') >= 4, `validate allowed the rest:\n${metrics}`);
});

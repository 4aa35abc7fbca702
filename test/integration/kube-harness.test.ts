import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startKube, type Kube } from '../harness/kube.js';

// The harness's control plane is a real one: kubectl talks TLS to a real
// kube-apiserver backed by a real etcd, admission (defaulting, the
// ServiceAccount plugin, server-side dry run) runs as in a cluster.

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'demo', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: '127.0.0.1:5000/demo/web:1.0' }] },
};

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'demo' },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: '127.0.0.1:5000/demo/web:1.0' }] } },
  },
};

interface Obj {
  metadata: { name: string; namespace?: string; uid?: string; generation?: number; labels?: Record<string, string> };
  spec: Record<string, any>;
  status?: Record<string, any>;
}

describe('kube harness: etcd + kube-apiserver v1.37.2 on loopback', () => {
  let kube: Kube;

  before(async () => {
    kube = await startKube();
    await kube.createNamespace('demo', { 'patchd.dev/test': 'yes' });
  }, { timeout: 15 * 60_000 });

  after(async () => {
    await kube?.stop();
  });

  test('kubectl and the server both report v1.37.2', async () => {
    const { stdout } = await kube.kubectl(['version', '-o', 'json']);
    const v = JSON.parse(stdout) as { clientVersion?: { gitVersion?: string }; serverVersion?: { gitVersion?: string } };
    assert.equal(v.clientVersion?.gitVersion, 'v1.37.2', `client version: ${stdout}`);
    assert.equal(v.serverVersion?.gitVersion, 'v1.37.2', `server version: ${stdout}`);
  });

  test('createNamespace makes the namespace, its labels and its default ServiceAccount', async () => {
    const ns = JSON.parse((await kube.kubectl(['get', 'namespace', 'demo', '-o', 'json'])).stdout) as Obj;
    assert.equal(ns.metadata.labels?.['patchd.dev/test'], 'yes', 'namespace label');
    const sa = JSON.parse((await kube.kubectl(['get', 'serviceaccount', 'default', '-n', 'demo', '-o', 'json'])).stdout) as Obj;
    assert.equal(sa.metadata.namespace, 'demo', 'service account namespace');
  });

  test('a Pod: server-side dry run stores nothing, apply stores it defaulted and admitted', async () => {
    const dry = await kube.kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod) });
    const dryPod = JSON.parse(dry.stdout) as Obj;
    assert.equal(dryPod.spec.serviceAccountName, 'default', 'dry run went through the ServiceAccount admission plugin');
    const missing = await kube.kubectl(['get', 'pod', 'web', '-n', 'demo'], { allowFailure: true });
    assert.notEqual(missing.code, 0, 'the dry run stored no pod');
    assert.match(missing.stderr, /NotFound|not found/, `get after dry run: ${missing.stderr}`);

    await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    const got = JSON.parse((await kube.kubectl(['get', 'pod', 'web', '-n', 'demo', '-o', 'json'])).stdout) as Obj;
    assert.ok(got.metadata.uid, 'stored pod has a uid');
    assert.equal(got.spec.containers?.[0]?.image, '127.0.0.1:5000/demo/web:1.0', 'image');
    assert.equal(got.spec.serviceAccountName, 'default', 'service account set by admission');
    assert.equal(got.spec.restartPolicy, 'Always', 'restartPolicy defaulted');
    assert.equal(got.spec.containers?.[0]?.imagePullPolicy, 'IfNotPresent', 'imagePullPolicy defaulted for a non-latest tag');
    assert.equal(got.status?.phase, 'Pending', 'no scheduler or kubelet runs');
  });

  test('a Deployment: server-side dry run, then apply, then get', async () => {
    const dry = JSON.parse((await kube.kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(deployment) })).stdout) as Obj;
    assert.equal(dry.spec.strategy?.type, 'RollingUpdate', 'dry run returns the defaulted object');
    const missing = await kube.kubectl(['get', 'deployment', 'web', '-n', 'demo'], { allowFailure: true });
    assert.notEqual(missing.code, 0, 'the dry run stored no deployment');

    await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify(deployment) });
    const got = JSON.parse((await kube.kubectl(['get', 'deployment', 'web', '-n', 'demo', '-o', 'json'])).stdout) as Obj;
    assert.equal(got.spec.replicas, 2, 'replicas');
    assert.equal(got.spec.template?.spec?.containers?.[0]?.image, '127.0.0.1:5000/demo/web:1.0', 'template image');
    assert.equal(got.metadata.generation, 1, 'first generation');
    assert.equal(got.spec.revisionHistoryLimit, 10, 'revisionHistoryLimit defaulted');
  });

  test('without createNamespace a pod is rejected: no controller makes the default ServiceAccount', async () => {
    await kube.kubectl(['create', 'namespace', 'bare']);
    const rejected = await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ ...pod, metadata: { ...pod.metadata, namespace: 'bare' } }), allowFailure: true });
    assert.notEqual(rejected.code, 0, 'pod in a namespace without a default ServiceAccount is rejected');
    assert.match(rejected.stderr, /serviceaccount "default" not found|service account/i, `rejection: ${rejected.stderr}`);
  });
});

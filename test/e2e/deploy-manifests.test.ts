import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { goTool } from '../harness/go-tools.js';
import { startKube, type Kube } from '../harness/kube.js';
import { run, tmpDir, type RunResult, type TempDir } from '../harness/tools.js';

// deploy/helm/patchd and deploy/kustomize rendered by the real helm and
// kubectl (its built-in kustomize), then offered to a real kube-apiserver as
// a server-side dry run: every object must be accepted as it is. The rendered
// objects are also read back for what the deployment depends on (webhooks,
// the pod's security and probes, the config patchd serve will load), and the
// two forms must render the same objects.

const repoRoot = new URL('../..', import.meta.url).pathname;
const chart = join(repoRoot, 'deploy/helm/patchd');
const kustomizeDir = join(repoRoot, 'deploy/kustomize');
const NS = 'patchd-system';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}
interface Probe { httpGet?: { path: string; port: string | number }; exec?: { command: string[] } }
interface SecurityContext {
  runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[] }; seccompProfile?: { type: string }; appArmorProfile?: { type: string }; fsGroup?: number;
}
interface Container {
  name: string; image: string; args?: string[]; env?: { name: string; value?: string }[]; envFrom?: { secretRef?: { name: string } }[];
  ports?: { name: string; containerPort: number }[]; readinessProbe?: Probe; livenessProbe?: Probe;
  securityContext?: SecurityContext; volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
}
interface PodSpec {
  containers: Container[]; securityContext?: SecurityContext; automountServiceAccountToken?: boolean; serviceAccountName?: string;
  volumes: { name: string; configMap?: { name: string }; secret?: { secretName: string }; persistentVolumeClaim?: { claimName: string }; emptyDir?: object }[];
}
interface Deployment extends K8sObject { spec: { replicas: number; strategy: { type: string }; template: { metadata: { annotations?: Record<string, string> }; spec: PodSpec } } }
interface Webhook {
  name: string; admissionReviewVersions: string[]; sideEffects: string; timeoutSeconds: number; failurePolicy: string; matchPolicy: string;
  reinvocationPolicy?: string; clientConfig: { caBundle?: string; service: { name: string; namespace: string; path: string; port: number } };
  namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  rules: { apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[] }[];
}
interface WebhookConfiguration extends K8sObject { webhooks: Webhook[] }

let work: TempDir;
let helm: string;
let kubectl: string;
let kube: Kube;
let kubeVersion: string;
let caBundle: string;
type Rendering = 'helm (cert-manager)' | 'helm (own CA)' | 'kustomize overlays/single' | 'kustomize base';
/** Each rendering: its objects and the YAML stream they came from. */
const rendered = {} as Record<Rendering, { yaml: string; objects: K8sObject[] }>;
/** overlays/replicas: three replicas on Redis, checked on its own (the tests above are about the one-replica form). */
let replicas: { yaml: string; objects: K8sObject[] };

function parseObjects(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
}

function ok(result: RunResult, what: string): string {
  assert.equal(result.code, 0, `${what} exited ${result.code}:\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

async function helmTemplate(...sets: string[]): Promise<string> {
  const args = ['template', 'patchd', chart, '--namespace', NS, '--kube-version', kubeVersion];
  for (const s of sets) args.push('--set', s);
  return ok(await run(helm, args, { allowFailure: true }), `helm template ${sets.join(' ')}`);
}

function one<T extends K8sObject>(objects: K8sObject[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  const [first] = found;
  assert.ok(first && found.length === 1, `one ${kind}${name ? ` ${name}` : ''} expected, found ${found.length}`);
  return first as T;
}

function onlyWebhook(config: WebhookConfiguration): Webhook {
  const [w] = config.webhooks;
  assert.ok(w && config.webhooks.length === 1, `${config.kind}: one webhook expected, found ${config.webhooks.length}`);
  return w;
}

function configText(configMap: K8sObject): string {
  const text = (configMap as K8sObject & { data?: Record<string, string> }).data?.['patchd.yaml'];
  assert.ok(text, `ConfigMap ${configMap.metadata.name} has no patchd.yaml`);
  return text;
}

/** kustomize's generators add a content hash to ConfigMap and Secret names; Helm checksums an annotation instead. */
function withoutHash(name: string): string {
  return name.replace(/^(patchd-(?:config|env))-[a-z0-9]{10}$/, '$1');
}

function kindsAndNames(objects: K8sObject[]): string[] {
  return objects.filter((o) => o.kind !== 'Namespace').map((o) => `${o.kind}/${withoutHash(o.metadata.name)}`).sort();
}

/** How `kubectl apply` names an object: kind.group/name. */
function appliedName(o: K8sObject): string {
  const group = o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : '';
  return `${o.kind.toLowerCase()}${group}/${o.metadata.name}`;
}

before(async () => {
  work = await tmpDir('patchd-deploy-manifests');
  [helm, kubectl] = await Promise.all([goTool('helm'), goTool('kubectl')]);
  kube = await startKube();
  const version = JSON.parse(ok(await kube.kubectl(['version', '--output', 'json'], { allowFailure: true }), 'kubectl version')) as { serverVersion: { gitVersion: string } };
  kubeVersion = version.serverVersion.gitVersion;

  // A CA for the rendering without cert-manager: the caBundle is real PEM.
  const caKey = join(work.path, 'ca.key');
  const caCrt = join(work.path, 'ca.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caCrt,
    '-days', '2', '-subj', '/CN=patchd-test-ca']);
  caBundle = Buffer.from(await readFile(caCrt, 'utf8')).toString('base64');

  const kustomize = async (dir: string) => ok(await run(kubectl, ['kustomize', join(kustomizeDir, dir)], { allowFailure: true }), `kubectl kustomize ${dir}`);
  const streams: Record<Rendering, string> = {
    'helm (cert-manager)': await helmTemplate(),
    'helm (own CA)': await helmTemplate('certManager.enabled=false', `admission.webhook.caBundle=${caBundle}`),
    'kustomize overlays/single': await kustomize('overlays/single'),
    'kustomize base': await kustomize('base'),
  };
  for (const [name, yaml] of Object.entries(streams) as [Rendering, string][]) rendered[name] = { yaml, objects: parseObjects(yaml) };
  const replicasYaml = await kustomize('overlays/replicas');
  replicas = { yaml: replicasYaml, objects: parseObjects(replicasYaml) };

  // Namespaced objects are dry-run into a namespace that exists: the kustomize
  // Namespace itself, applied for real (with its Pod Security labels).
  ok(await kube.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify(one(rendered['kustomize base'].objects, 'Namespace')), allowFailure: true }), 'apply the Namespace');
  // A bare API server has no cert-manager. These CRDs name Certificate and
  // Issuer (cert-manager.io/v1) with a schema that keeps any field: the dry
  // run proves group, version, kind, scope and metadata, not cert-manager's
  // own validation of their specs.
  const crd = (kind: string, plural: string) => ({
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${plural}.cert-manager.io` },
    spec: {
      group: 'cert-manager.io', scope: 'Namespaced', names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  });
  ok(await kube.kubectl(['apply', '--server-side', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [crd('Certificate', 'certificates'), crd('Issuer', 'issuers')] }), allowFailure: true }), 'apply the cert-manager CRDs');
  ok(await kube.kubectl(['wait', '--for', 'condition=Established', '--timeout', '60s', 'crd/certificates.cert-manager.io', 'crd/issuers.cert-manager.io'], { allowFailure: true }), 'wait for the CRDs');
});

after(async () => {
  await kube?.stop();
  await work?.remove();
});

test('helm lint is clean, with cert-manager and with a caBundle instead', async () => {
  for (const sets of [[], ['certManager.enabled=false', `admission.webhook.caBundle=${caBundle}`], ['buildkit.enabled=false', 'admission.enabled=false']]) {
    const out = ok(await run(helm, ['lint', '--strict', chart, ...sets.flatMap((s) => ['--set', s])], { allowFailure: true }), `helm lint ${sets.join(' ')}`);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/, `helm lint ${sets.join(' ')}:\n${out}`);
    assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/, `helm lint ${sets.join(' ')} has findings:\n${out}`);
  }
});

test('the API server accepts every rendered object (server-side dry run)', async () => {
  for (const [name, { yaml, objects }] of Object.entries(rendered)) {
    const result = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: yaml, allowFailure: true });
    assert.equal(result.code, 0, `${name}: kubectl apply --dry-run=server exited ${result.code}:\n${result.stderr}`);
    assert.ok(objects.length >= 10, `${name}: only ${objects.length} objects rendered`);
    for (const o of objects) {
      assert.ok(result.stdout.includes(`${appliedName(o)} serverside-applied (server dry run)`), `${name}: ${appliedName(o)} not applied:\n${result.stdout}`);
    }
    // The one warning expected: the Namespace asks Pod Security to warn below
    // baseline, which rootless BuildKit's Unconfined profiles are.
    const warnings = result.stderr.split('\n').filter((l) => /warning/i.test(l));
    for (const w of warnings) {
      assert.match(w, /would violate PodSecurity "baseline:latest"/, `${name}: the API server warned:\n${result.stderr}`);
      assert.doesNotMatch(w.replaceAll('container "buildkitd"', ''), /container "/, `${name}: a container besides buildkitd is below baseline:\n${w}`);
    }
  }
});

test('the one-off patch Job (deploy/kubernetes/patch-job.yaml) is accepted too', async () => {
  const job = await readFile(join(repoRoot, 'deploy/kubernetes/patch-job.yaml'), 'utf8');
  const result = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '--namespace', NS, '-f', '-'], { input: job, allowFailure: true });
  assert.equal(result.code, 0, `patch-job.yaml refused:\n${result.stderr}`);
  assert.match(result.stdout, /job\.batch\/patchd-patch serverside-applied \(server dry run\)/, `patch-job.yaml:\n${result.stdout}`);
});

test('the webhooks: AdmissionReview v1, no side effects, kube-system and patchd-system never sent, the right service paths', () => {
  for (const [name, { objects }] of Object.entries(rendered)) {
    const mutating = one<WebhookConfiguration>(objects, 'MutatingWebhookConfiguration', 'patchd');
    const validating = one<WebhookConfiguration>(objects, 'ValidatingWebhookConfiguration', 'patchd');
    for (const [config, path] of [[mutating, '/admission/mutate'], [validating, '/admission/validate']] as const) {
      const where = `${name} ${config.kind}`;
      const w = onlyWebhook(config);
      assert.deepEqual(w.admissionReviewVersions, ['v1'], `${where}: admissionReviewVersions`);
      assert.equal(w.sideEffects, 'None', `${where}: sideEffects`);
      assert.equal(w.timeoutSeconds, 5, `${where}: timeoutSeconds`);
      assert.equal(w.matchPolicy, 'Equivalent', `${where}: matchPolicy`);
      assert.ok(['Ignore', 'Fail'].includes(w.failurePolicy), `${where}: failurePolicy ${w.failurePolicy}`);
      assert.deepEqual(w.clientConfig.service, { name: 'patchd', namespace: NS, path, port: 443 }, `${where}: clientConfig.service`);
      const excluded = w.namespaceSelector.matchExpressions.find((e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn');
      assert.ok(excluded, `${where}: no NotIn on kubernetes.io/metadata.name`);
      for (const ns of ['kube-system', NS]) assert.ok(excluded.values.includes(ns), `${where}: ${ns} is not excluded`);
      const resources = w.rules.flatMap((r) => r.resources.map((res) => `${r.apiGroups[0] || 'core'}/${r.apiVersions[0]}/${res}`)).sort();
      assert.deepEqual(resources, ['apps/v1/daemonsets', 'apps/v1/deployments', 'apps/v1/replicasets', 'apps/v1/statefulsets',
        'batch/v1/cronjobs', 'batch/v1/jobs', 'core/v1/pods', 'core/v1/pods/ephemeralcontainers'], `${where}: rules`);
      for (const r of w.rules) assert.deepEqual(r.operations, ['CREATE', 'UPDATE'], `${where}: operations`);
    }
    assert.equal(onlyWebhook(mutating).failurePolicy, 'Ignore', `${name}: mutate is Ignore`);
    assert.equal(onlyWebhook(mutating).reinvocationPolicy, 'IfNeeded', `${name}: mutate reinvocationPolicy`);
    const certManager = objects.some((o) => o.kind === 'Certificate');
    for (const config of [mutating, validating]) {
      const inject = config.metadata.annotations?.['cert-manager.io/inject-ca-from'];
      if (certManager) {
        assert.equal(inject, `${NS}/patchd-serving`, `${name} ${config.kind}: inject-ca-from`);
        const serving = one<K8sObject & { spec: { secretName: string; dnsNames: string[] } }>(objects, 'Certificate', 'patchd-serving');
        assert.equal(serving.spec.secretName, 'patchd-tls', `${name}: the serving certificate's Secret`);
        assert.ok(serving.spec.dnsNames.includes(`patchd.${NS}.svc`), `${name}: the serving certificate names the Service`);
      } else {
        assert.equal(inject, undefined, `${name} ${config.kind}: no inject-ca-from without cert-manager`);
      }
    }
    if (name === 'helm (own CA)') {
      for (const config of [mutating, validating]) assert.equal(onlyWebhook(config).clientConfig.caBundle, caBundle, `${name} ${config.kind}: caBundle`);
    }
  }
});

test('the pod: one replica, Recreate, probes, patchd non-root and read-only, rootless buildkitd as BuildKit documents it', () => {
  for (const [name, { objects }] of Object.entries(rendered)) {
    const deployment = one<Deployment>(objects, 'Deployment', 'patchd');
    assert.equal(deployment.spec.replicas, 1, `${name}: replicas`);
    assert.equal(deployment.spec.strategy.type, 'Recreate', `${name}: strategy`);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.automountServiceAccountToken, false, `${name}: no service account token`);
    assert.equal(one<K8sObject & { automountServiceAccountToken: boolean }>(objects, 'ServiceAccount', 'patchd').automountServiceAccountToken, false, `${name}: ServiceAccount automount`);
    assert.equal(pod.securityContext?.fsGroup, 1000, `${name}: fsGroup 1000 shares the BuildKit socket and the PVC`);

    const patchd = pod.containers.find((c) => c.name === 'patchd');
    assert.ok(patchd, `${name}: no patchd container`);
    assert.deepEqual(patchd.args, ['serve', '--config', '/etc/patchd/patchd.yaml'], `${name}: patchd args`);
    assert.match(patchd.image, /^ghcr\.io\/patchd\/patchd:/, `${name}: patchd image`);
    assert.deepEqual(patchd.ports?.map((p) => [p.name, p.containerPort]), [['http', 8080], ['admission', 8443]], `${name}: patchd ports`);
    assert.deepEqual(patchd.readinessProbe?.httpGet, { path: '/readyz', port: 'http' }, `${name}: readiness probe`);
    assert.deepEqual(patchd.livenessProbe?.httpGet, { path: '/healthz', port: 'http' }, `${name}: liveness probe`);
    const sc = patchd.securityContext;
    assert.equal(sc?.runAsNonRoot, true, `${name}: patchd runAsNonRoot`);
    assert.equal(sc?.runAsUser, 10001, `${name}: patchd runAsUser`);
    assert.equal(sc?.readOnlyRootFilesystem, true, `${name}: patchd readOnlyRootFilesystem`);
    assert.equal(sc?.allowPrivilegeEscalation, false, `${name}: patchd allowPrivilegeEscalation`);
    assert.deepEqual(sc?.capabilities?.drop, ['ALL'], `${name}: patchd drops all capabilities`);
    assert.equal(sc?.seccompProfile?.type, 'RuntimeDefault', `${name}: patchd seccomp`);
    const envSecret = patchd.envFrom?.[0]?.secretRef?.name ?? '';
    assert.equal(withoutHash(envSecret), 'patchd-env', `${name}: patchd's environment from the Secret`);
    assert.ok(objects.some((o) => o.kind === 'Secret' && o.metadata.name === envSecret), `${name}: Secret ${envSecret} is rendered`);

    const buildkitd = pod.containers.find((c) => c.name === 'buildkitd');
    assert.ok(buildkitd, `${name}: no buildkitd sidecar`);
    assert.equal(buildkitd.image, 'moby/buildkit:v0.32.2-rootless', `${name}: buildkitd image`);
    assert.deepEqual(buildkitd.args, ['--addr', 'unix:///run/buildkit/buildkitd.sock', '--oci-worker-no-process-sandbox'], `${name}: buildkitd args`);
    assert.equal(buildkitd.securityContext?.seccompProfile?.type, 'Unconfined', `${name}: buildkitd seccomp`);
    assert.equal(buildkitd.securityContext?.appArmorProfile?.type, 'Unconfined', `${name}: buildkitd AppArmor`);
    assert.equal(buildkitd.securityContext?.runAsUser, 1000, `${name}: buildkitd runAsUser`);
    assert.equal(buildkitd.securityContext?.runAsGroup, 1000, `${name}: buildkitd runAsGroup`);
    assert.deepEqual(buildkitd.readinessProbe?.exec?.command, ['buildctl', 'debug', 'workers'], `${name}: buildkitd readiness`);
    assert.ok(buildkitd.env?.some((e) => e.name === 'BUILDKIT_HOST' && e.value === 'unix:///run/buildkit/buildkitd.sock'), `${name}: buildctl probes the socket`);

    const mountOf = (c: Container, path: string) => c.volumeMounts?.find((m) => m.mountPath === path)?.name;
    const shared = mountOf(patchd, '/run/buildkit');
    assert.ok(shared && shared === mountOf(buildkitd, '/run/buildkit'), `${name}: /run/buildkit is not one volume in both containers`);
    const volume = (v: string | undefined) => pod.volumes.find((x) => x.name === v);
    assert.ok(volume(shared)?.emptyDir, `${name}: /run/buildkit is an emptyDir`);
    assert.ok(volume(mountOf(buildkitd, '/home/user/.local/share/buildkit'))?.emptyDir, `${name}: BuildKit's state is an emptyDir`);
    assert.ok(volume(mountOf(patchd, '/tmp'))?.emptyDir, `${name}: /tmp is an emptyDir`);
    assert.equal(volume(mountOf(patchd, '/var/lib/patchd'))?.persistentVolumeClaim?.claimName, 'patchd-data', `${name}: dataDir on the PVC`);
    assert.equal(volume(mountOf(patchd, '/etc/patchd/tls'))?.secret?.secretName, 'patchd-tls', `${name}: TLS Secret`);
    const pvc = one<K8sObject & { spec: { accessModes: string[] } }>(objects, 'PersistentVolumeClaim', 'patchd-data');
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteOnce'], `${name}: PVC access mode`);
    assert.equal(one<K8sObject & { spec: { maxUnavailable: number } }>(objects, 'PodDisruptionBudget', 'patchd').spec.maxUnavailable, 1, `${name}: PDB`);
  }
});

test('patchd.yaml in the ConfigMap is a config patchd serve loads, and it matches the pod', () => {
  for (const [name, { objects }] of Object.entries(rendered)) {
    const deployment = one<Deployment>(objects, 'Deployment', 'patchd');
    const pod = deployment.spec.template.spec;
    const configMapName = pod.volumes.find((v) => v.name === 'config')?.configMap?.name;
    assert.ok(configMapName, `${name}: no config volume from a ConfigMap`);
    const config = loadConfig({}, configText(one(objects, 'ConfigMap', configMapName)), `${name} patchd.yaml`);
    assert.deepEqual(config.server, { host: '0.0.0.0', port: 8080 }, `${name}: server`);
    assert.equal(config.dataDir, '/var/lib/patchd', `${name}: dataDir`);
    assert.equal(config.buildkit?.address, 'unix:///run/buildkit/buildkitd.sock', `${name}: buildkit.address`);
    assert.ok(config.admission, `${name}: no admission block`);
    assert.equal(config.admission.port, 8443, `${name}: admission port`);
    assert.equal(config.admission.certFile, '/etc/patchd/tls/tls.crt', `${name}: certFile`);
    assert.equal(config.admission.keyFile, '/etc/patchd/tls/tls.key', `${name}: keyFile`);
    for (const ns of ['kube-system', NS]) assert.ok(config.admission.exempt.namespaces.includes(ns), `${name}: ${ns} not exempt in patchd.yaml`);
  }
});

test('Helm and kustomize render the same objects', () => {
  const normalise = (value: unknown) => JSON.parse(JSON.stringify(value).replace(/patchd-(config|env)-[a-z0-9]{10}/g, 'patchd-$1')) as unknown;
  for (const [helmName, kustomizeName] of [['helm (cert-manager)', 'kustomize overlays/single'], ['helm (own CA)', 'kustomize base']] as const) {
    const h = rendered[helmName].objects;
    const k = rendered[kustomizeName].objects;
    assert.deepEqual(kindsAndNames(h), kindsAndNames(k), `${helmName} and ${kustomizeName} differ in kinds and names`);
    for (const o of h) {
      if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, NS, `${helmName}: ${o.kind}/${o.metadata.name} namespace`);
    }
    const hPod = one<Deployment>(h, 'Deployment').spec.template.spec;
    const kPod = one<Deployment>(k, 'Deployment').spec.template.spec;
    assert.deepEqual(normalise(hPod), normalise(kPod), `${helmName} and ${kustomizeName}: the pod specs differ`);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const withoutCa = (o: WebhookConfiguration) => o.webhooks.map(({ clientConfig: { caBundle: _, ...clientConfig }, ...w }) => ({ ...w, clientConfig }));
      assert.deepEqual(withoutCa(one(h, kind)), withoutCa(one(k, kind)), `${helmName} and ${kustomizeName}: ${kind} differs`);
    }
    for (const kind of ['Service', 'NetworkPolicy', 'PodDisruptionBudget']) {
      assert.deepEqual(one(h, kind).spec, one(k, kind).spec, `${helmName} and ${kustomizeName}: ${kind} spec differs`);
    }
  }
  assert.ok(one(rendered['kustomize base'].objects, 'Namespace', NS), 'the kustomize base creates the namespace');
});

test('Pod Security: the pod is admitted in patchd-system; without the BuildKit sidecar it meets restricted', async () => {
  // A Pod from the Deployment's template, dry-run into a namespace: Pod Security admission judges Pods, not Deployments.
  const podOf = (objects: K8sObject[], namespace: string) => {
    const template = one<Deployment>(objects, 'Deployment', 'patchd').spec.template;
    return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name: 'patchd', namespace }, spec: template.spec });
  };
  const restricted = 'patchd-psa-restricted';
  await kube.createNamespace(restricted, { 'pod-security.kubernetes.io/enforce': 'restricted' });
  for (const ns of [NS, restricted]) ok(await kube.kubectl(['--namespace', ns, 'create', 'serviceaccount', 'patchd'], { allowFailure: true }), `service account in ${ns}`);

  const full = rendered['kustomize overlays/single'].objects;
  const admitted = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], { input: podOf(full, NS), allowFailure: true });
  assert.equal(admitted.code, 0, `the pod is refused in ${NS}:\n${admitted.stderr}`);

  const refused = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], { input: podOf(full, restricted), allowFailure: true });
  assert.notEqual(refused.code, 0, 'the pod with rootless BuildKit is admitted under restricted');
  assert.match(refused.stderr, /violates PodSecurity "restricted/, `not refused by Pod Security:\n${refused.stderr}`);
  assert.match(refused.stderr, /container "buildkitd"/, `not refused for buildkitd:\n${refused.stderr}`);
  assert.doesNotMatch(refused.stderr, /container "patchd"/, `patchd's own container breaks restricted:\n${refused.stderr}`);

  const alone = parseObjects(await helmTemplate('buildkit.enabled=false'));
  const alonePod = one<Deployment>(alone, 'Deployment', 'patchd').spec.template.spec;
  assert.deepEqual(alonePod.containers.map((c) => c.name), ['patchd'], 'buildkit.enabled=false leaves the sidecar out');
  const config = loadConfig({}, configText(one(alone, 'ConfigMap')));
  assert.equal(config.buildkit, undefined, 'buildkit.enabled=false leaves buildkit out of patchd.yaml');
  const restrictedOk = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], { input: podOf(alone, restricted), allowFailure: true });
  assert.equal(restrictedOk.code, 0, `patchd without BuildKit is refused under restricted:\n${restrictedOk.stderr}`);
});

test('Helm: the AppArmor annotation before Kubernetes 1.30, and values the schema refuses', async () => {
  const oldCluster = ok(await run(helm, ['template', 'patchd', chart, '--namespace', NS, '--kube-version', 'v1.29.4'], { allowFailure: true }), 'helm template for 1.29');
  const template = one<Deployment>(parseObjects(oldCluster), 'Deployment', 'patchd').spec.template;
  assert.equal(template.metadata.annotations?.['container.apparmor.security.beta.kubernetes.io/buildkitd'], 'unconfined', 'no AppArmor annotation for 1.29');
  const buildkitd = template.spec.containers.find((c) => c.name === 'buildkitd');
  assert.equal(buildkitd?.securityContext?.appArmorProfile, undefined, '1.29 gets the annotation, not the field');
  assert.equal(buildkitd?.securityContext?.seccompProfile?.type, 'Unconfined', 'seccomp is a field since 1.19');

  for (const set of ['admission.webhook.failurePolicy.validate=Sometimes', 'config.extra.dataDir=/elsewhere', 'admission.mode=strict', 'persistence.accessModes={ReadOnlyMany}']) {
    const result = await run(helm, ['template', 'patchd', chart, '--namespace', NS, '--kube-version', kubeVersion, '--set', set], { allowFailure: true });
    assert.notEqual(result.code, 0, `values.schema.json accepts ${set}`);
    assert.match(result.stderr, /schema/i, `${set} refused for another reason:\n${result.stderr}`);
  }
});

interface Affinity { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution?: { weight: number; podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } } }[] } }
type ReplicasDeployment = Deployment & { spec: { selector: { matchLabels: Record<string, string> }; strategy: { rollingUpdate?: { maxUnavailable: number; maxSurge: number } }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec & { affinity?: Affinity } } } };
const secretData = (secret: K8sObject) => Object.fromEntries(Object.entries((secret as K8sObject & { data?: Record<string, string> }).data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

test('overlays/replicas: the API server accepts it; three replicas spread over nodes, each pod with its own buildkitd, a PDB keeping two', async () => {
  const { yaml, objects } = replicas;
  const result = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: yaml, allowFailure: true });
  assert.equal(result.code, 0, `overlays/replicas: kubectl apply --dry-run=server exited ${result.code}:\n${result.stderr}`);
  for (const o of objects) assert.ok(result.stdout.includes(`${appliedName(o)} serverside-applied (server dry run)`), `overlays/replicas: ${appliedName(o)} not applied:\n${result.stdout}`);

  const deployment = one<ReplicasDeployment>(objects, 'Deployment', 'patchd');
  assert.equal(deployment.spec.replicas, 3, 'three replicas');
  assert.equal(deployment.spec.strategy.type, 'RollingUpdate', 'replicas share no volume: rolling updates');
  assert.deepEqual(deployment.spec.strategy.rollingUpdate, { maxUnavailable: 1, maxSurge: 0 }, 'one pod replaced at a time');
  const pod = deployment.spec.template.spec;
  const anti = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0];
  assert.equal(anti?.podAffinityTerm.topologyKey, 'kubernetes.io/hostname', 'anti-affinity spreads replicas over nodes');
  assert.deepEqual(anti?.podAffinityTerm.labelSelector.matchLabels, deployment.spec.selector.matchLabels, 'anti-affinity selects patchd\'s own pods');

  // Per-replica BuildKit: the sidecar is in the pod template (one per pod), its socket on the pod's own emptyDir.
  const single = one<Deployment>(rendered['kustomize overlays/single'].objects, 'Deployment', 'patchd').spec.template.spec;
  const normalise = (value: unknown) => JSON.parse(JSON.stringify(value).replace(/patchd-(config|env)-[a-z0-9]{10}/g, 'patchd-$1')) as unknown;
  assert.deepEqual(normalise(pod.containers), normalise(single.containers), 'the same patchd and buildkitd containers as the one-replica overlay');
  const buildkitd = pod.containers.find((c) => c.name === 'buildkitd');
  const socketVolume = buildkitd?.volumeMounts?.find((m) => m.mountPath === '/run/buildkit')?.name;
  assert.ok(pod.volumes.find((v) => v.name === socketVolume)?.emptyDir, 'each pod\'s buildkitd socket is on the pod\'s own emptyDir');
  assert.ok(pod.volumes.find((v) => v.name === 'data')?.emptyDir, 'dataDir is per pod (an emptyDir): the queue is in Redis');
  assert.equal(objects.find((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === 'patchd-data'), undefined, 'no patchd-data PVC');

  const pdb = one<K8sObject & { spec: { minAvailable?: number; maxUnavailable?: number; selector: { matchLabels: Record<string, string> } } }>(objects, 'PodDisruptionBudget', 'patchd');
  assert.equal(pdb.spec.minAvailable, 2, 'two of three replicas stay through drains');
  assert.equal(pdb.spec.maxUnavailable, undefined, 'minAvailable alone');
  assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels, 'the PDB selects patchd\'s pods');
});

test('overlays/replicas: one config for every replica, the queue on Redis with its URL from the Secret; Redis locked down to patchd', async () => {
  const { objects } = replicas;
  const pod = one<ReplicasDeployment>(objects, 'Deployment', 'patchd').spec.template.spec;
  const configMapName = pod.volumes.find((v) => v.name === 'config')?.configMap?.name;
  assert.ok(configMapName, 'no config volume from a ConfigMap');
  const text = configText(one(objects, 'ConfigMap', configMapName));
  const envName = pod.containers.find((c) => c.name === 'patchd')?.envFrom?.[0]?.secretRef?.name;
  assert.ok(envName, 'patchd has no environment Secret');
  const env = secretData(one(objects, 'Secret', envName));
  const config = loadConfig(env, text, 'overlays/replicas patchd.yaml');
  assert.equal(config.buildkit?.address, 'unix:///run/buildkit/buildkitd.sock', 'buildkit.address is the pod-local socket');
  assert.equal(env.PATCHD_BUILDKIT_ADDRESS, undefined, 'no shared BuildKit address in the environment');
  const queue = (config as unknown as { queue?: { redis?: { url: string } } }).queue;
  assert.ok(env.PATCHD_REDIS_URL, 'the Redis URL (with its password) is in the Secret');
  assert.equal(queue?.redis?.url, env.PATCHD_REDIS_URL, 'the Secret\'s PATCHD_REDIS_URL is the queue patchd uses');
  assert.doesNotMatch(text, /redis:\/\/[^@\s]*@/, 'no Redis password in the ConfigMap');

  const redis = one<Deployment & { spec: { selector: { matchLabels: Record<string, string> } } }>(objects, 'Deployment', 'patchd-redis');
  assert.equal(redis.spec.replicas, 1, 'one Redis');
  assert.equal(redis.spec.strategy.type, 'Recreate', 'one writer on its volume');
  const server = redis.spec.template.spec.containers[0]!;
  const args = server.args?.join(' ') ?? '';
  assert.match(args, /--maxmemory-policy noeviction/, 'BullMQ needs noeviction');
  assert.match(args, /--appendonly yes/, 'acknowledged enqueues survive a Redis restart');
  assert.match(args, /--requirepass \$\(REDIS_PASSWORD\)/, 'Redis wants a password');
  const passwordRef = (server.env as ({ name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[] | undefined))?.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef;
  assert.ok(passwordRef, 'the password comes from a Secret');
  const password = secretData(one(objects, 'Secret', passwordRef.name))[passwordRef.key];
  assert.ok(password && new URL(env.PATCHD_REDIS_URL).password === password, 'patchd\'s URL carries the password Redis requires');
  assert.equal(redis.spec.template.spec.volumes.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, 'patchd-redis-data', 'Redis data on its PVC');
  one(objects, 'PersistentVolumeClaim', 'patchd-redis-data');
  const service = one<K8sObject & { spec: { selector: Record<string, string>; ports: { port: number }[] } }>(objects, 'Service', 'patchd-redis');
  assert.deepEqual(service.spec.selector, redis.spec.selector.matchLabels, 'the Service selects the Redis pod');
  assert.equal(new URL(env.PATCHD_REDIS_URL).host, `patchd-redis:${service.spec.ports[0]!.port}`, 'patchd\'s URL names the Service and its port');

  type Policy = K8sObject & { spec: { podSelector: { matchLabels: Record<string, string> }; ingress?: { from?: { podSelector?: { matchLabels: Record<string, string> } }[]; ports?: { port: number }[] }[]; egress?: { to?: { podSelector?: { matchLabels: Record<string, string> } }[]; ports?: { port: number }[] }[] } };
  const patchdLabels = one<ReplicasDeployment>(objects, 'Deployment', 'patchd').spec.selector.matchLabels;
  const redisPolicy = one<Policy>(objects, 'NetworkPolicy', 'patchd-redis');
  assert.deepEqual(redisPolicy.spec.ingress, [{ from: [{ podSelector: { matchLabels: patchdLabels } }], ports: [{ port: 6379, protocol: 'TCP' }] }], 'only patchd\'s pods reach Redis');
  assert.deepEqual(redisPolicy.spec.egress, [], 'Redis reaches nothing');
  const egress = one<Policy>(objects, 'NetworkPolicy', 'patchd').spec.egress ?? [];
  assert.ok(egress.some((e) => e.ports?.some((p) => p.port === 6379) && e.to?.some((t) => JSON.stringify(t.podSelector?.matchLabels) === JSON.stringify(redis.spec.selector.matchLabels))), 'patchd may reach Redis');

  // Redis meets Pod Security's restricted level.
  const restricted = 'patchd-redis-restricted';
  await kube.createNamespace(restricted, { 'pod-security.kubernetes.io/enforce': 'restricted' });
  const podJson = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'redis', namespace: restricted }, spec: redis.spec.template.spec });
  const admitted = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], { input: podJson, allowFailure: true });
  assert.equal(admitted.code, 0, `the Redis pod is refused under restricted:\n${admitted.stderr}`);
});

test('Helm replicaCount=3 with queue.redis.url: the same multi-replica pod as overlays/replicas; more than one replica without Redis is refused', async () => {
  const redisUrl = 'redis://redis.example.internal:6380';
  const yaml = await helmTemplate('replicaCount=3', `queue.redis.url=${redisUrl}`);
  const objects = parseObjects(yaml);
  const result = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: yaml, allowFailure: true });
  assert.equal(result.code, 0, `helm replicas: kubectl apply --dry-run=server exited ${result.code}:\n${result.stderr}`);

  const deployment = one<ReplicasDeployment>(objects, 'Deployment', 'patchd');
  assert.equal(deployment.spec.replicas, 3, 'three replicas');
  assert.equal(deployment.spec.strategy.type, 'RollingUpdate', 'rolling updates');
  assert.deepEqual(deployment.spec.strategy.rollingUpdate, { maxUnavailable: 1, maxSurge: 0 }, 'one pod replaced at a time');
  const kustomized = one<ReplicasDeployment>(replicas.objects, 'Deployment', 'patchd').spec.template.spec;
  const pod = deployment.spec.template.spec;
  const normalise = (value: unknown) => JSON.parse(JSON.stringify(value).replace(/patchd-(config|env)-[a-z0-9]{10}/g, 'patchd-$1')) as unknown;
  assert.deepEqual(normalise(pod.affinity), normalise(kustomized.affinity), 'the same anti-affinity as overlays/replicas');
  assert.deepEqual(normalise(pod.containers), normalise(one<Deployment>(rendered['helm (cert-manager)'].objects, 'Deployment', 'patchd').spec.template.spec.containers),
    'the same patchd and buildkitd containers as one replica: each pod its own buildkitd');
  assert.ok(pod.volumes.find((v) => v.name === 'data')?.emptyDir, 'dataDir is an emptyDir');
  assert.equal(objects.find((o) => o.kind === 'PersistentVolumeClaim'), undefined, 'no PVC');
  assert.equal(one<K8sObject & { spec: { minAvailable?: number } }>(objects, 'PodDisruptionBudget', 'patchd').spec.minAvailable, 2, 'the PDB keeps two');
  const egress = (one<K8sObject & { spec: { egress: { ports?: { port: number }[] }[] } }>(objects, 'NetworkPolicy', 'patchd').spec.egress).flatMap((e) => e.ports ?? []).map((p) => p.port);
  assert.ok(egress.includes(6380), `patchd may reach Redis on the URL's port: ${egress.join(', ')}`);
  const config = loadConfig({}, configText(one(objects, 'ConfigMap')), 'helm replicas patchd.yaml');
  assert.equal((config as unknown as { queue?: { redis?: { url: string } } }).queue?.redis?.url, redisUrl, 'patchd.yaml has the Redis queue');
  assert.equal(config.buildkit?.address, 'unix:///run/buildkit/buildkitd.sock', 'buildkit.address is the pod-local socket');

  const refused = await run(helm, ['template', 'patchd', chart, '--namespace', NS, '--kube-version', kubeVersion, '--set', 'replicaCount=3'], { allowFailure: true });
  assert.notEqual(refused.code, 0, 'replicaCount=3 on SQLite is rendered');
  assert.match(refused.stderr, /replicaCount > 1 needs the Redis queue/, `refused for another reason:\n${refused.stderr}`);
});

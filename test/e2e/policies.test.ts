import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import { createAdmissionApp } from '../../src/app/admission/routes.js';
import type { RegistryLookups } from '../../src/app/admission/registry-lookups.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import { goTool } from '../harness/go-tools.js';
import { startKube, type Kube } from '../harness/kube.js';
import { disagreementTable, loadPolicySamples, policiesDir, type Decision, type KubeObject, type PolicySample } from '../harness/policy-samples.js';
import { run, type RunResult } from '../harness/tools.js';

// deploy/policies: the ValidatingAdmissionPolicy (on a real kube-apiserver),
// the Kyverno policy (kyverno CLI) and the Gatekeeper constraint (gator) must
// decide every sample as patchd's own webhook does in tag mode, and as
// samples/expected.yaml says; a denial names the unpatched images. The last
// test prints a table of every disagreement.

const samples = await loadPolicySamples();
const decisions = new Map<string, Map<string, Decision>>();
const exemptNamespaces = ['kube-system', 'patchd-system'];
const creates = samples.filter((s) => s.review.request.operation === 'CREATE');
const updates = samples.filter((s) => s.review.request.operation === 'UPDATE');

function record(engine: string, sample: PolicySample, decision: Decision): void {
  let byEngine = decisions.get(engine);
  if (!byEngine) decisions.set(engine, byEngine = new Map());
  byEngine.set(sample.name, decision);
}

/** This engine's disagreements with expected.yaml, one line each; '' when none. */
function disagreements(engine: string): string {
  const mine = decisions.get(engine) ?? new Map<string, Decision>();
  return samples.filter((s) => mine.has(s.name) && mine.get(s.name) !== s.expected)
    .map((s) => `${s.name}: expected ${s.expected}, ${engine} says ${mine.get(s.name)}`).join('\n');
}

/** Runs a policy CLI to its end: a non-zero exit is an answer here, not an error. */
const cli = (file: string, args: readonly string[]): Promise<RunResult> => run(file, args, { allowFailure: true, timeoutMs: 120_000 });

const scratch = await mkdtemp(join(tmpdir(), 'patchd-policies-'));
after(() => rm(scratch, { recursive: true, force: true }));

test('patchd (tag mode, exempt kube-system and patchd-system) decides every sample as expected.yaml says', async () => {
  const config = loadConfig({}, `
admission: { certFile: /nonexistent/tls.crt, keyFile: /nonexistent/tls.key, mode: tag, exempt: { namespaces: [${exemptNamespaces.join(', ')}] } }
registries:
  example: { url: "https://registry.example.com" }
`);
  const queue = openSqliteQueue(':memory:');
  try {
    const unreachable: RegistryLookups = {
      digestOf: () => { throw new Error('tag mode asked a registry for a digest'); },
      annotationsOf: () => { throw new Error('tag mode asked a registry for a manifest'); },
    };
    const app = createAdmissionApp({ config, queue, registries: new Map(), logger: silentLogger(), lookups: unreachable });
    for (const sample of samples) {
      const res = await app.request('/admission/validate', { method: 'POST', body: JSON.stringify(sample.review), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200, `${sample.name}: the webhook answers 200`);
      const { response } = await res.json() as { response: { uid: string; allowed: boolean; status?: { message: string } } };
      assert.equal(response.uid, sample.review.request.uid, `${sample.name}: the answer carries the request's uid`);
      record('patchd', sample, response.allowed ? 'allow' : 'deny');
      const message = response.status?.message ?? '';
      for (const image of response.allowed ? [] : sample.denied) {
        assert.ok(message.includes(`${image} (`), `${sample.name}: patchd's denial names ${image}: ${message}`);
      }
    }
  } finally {
    await queue.close();
  }
  assert.equal(disagreements('patchd'), '', 'patchd disagrees with expected.yaml');
});

// Each engine's test first decides every sample (so the last test's table is
// complete), then checks messages and the engine's own shipped test file.

test('Kyverno: kyverno apply decides every sample as expected.yaml says, and kyverno test passes', async () => {
  const kyverno = await goTool('kyverno');
  const dir = join(policiesDir, 'kyverno');

  // Every sample through kyverno apply, not through the shipped test: the policy report's results for each.
  const applied = await cli(kyverno, ['apply', join(dir, 'policy.yaml'), ...creates.flatMap((s) => ['--resource', s.path]), '--policy-report', '--output-format', 'json', '--remove-color']);
  // The report is the JSON line after the CLI's warnings.
  const line = applied.stdout.split('\n').find((l) => l.startsWith('{'));
  assert.ok(line, `kyverno apply prints a policy report: ${applied.stdout}${applied.stderr}`);
  const report = JSON.parse(line) as { summary: Record<string, number>; results: { result: string; message: string; resources: { kind: string; namespace?: string; name: string }[] }[] };
  assert.equal(report.summary.error, 0, `kyverno apply reports no errors: ${line}`);
  assert.equal(applied.code, report.summary.fail ? 1 : 0, `kyverno apply exits 1 exactly when a rule fails: ${applied.stderr}`);
  const problems: string[] = [];
  for (const sample of creates) {
    const { kind, metadata } = sample.review.request.object;
    const results = report.results.filter((r) => r.resources.some((o) => o.kind === kind && o.namespace === metadata.namespace && o.name === metadata.name));
    const failed = results.filter((r) => r.result === 'fail');
    record('kyverno', sample, failed.length ? 'deny' : 'allow');
    // Only a resource in an exempt namespace is excluded, and so has no results.
    if ((results.length > 0) === exemptNamespaces.includes(metadata.namespace ?? '')) problems.push(`${sample.name}: ${results.length} results`);
    if (results.some((r) => r.result !== 'pass' && r.result !== 'fail')) problems.push(`${sample.name}: ${JSON.stringify(results)}`);
    // A foreach rule stops at its first failing element: the message names the first unpatched image.
    for (const { message } of failed) {
      if (!sample.denied.some((image) => message.startsWith(`validation failure: ${image} is not patched by patchd: use `))) problems.push(`${sample.name}: the denial names none of ${sample.denied.join(', ')}: ${message}`);
    }
  }
  assert.equal(disagreements('kyverno'), '', 'Kyverno disagrees with expected.yaml');
  assert.deepEqual(problems, [], 'Kyverno\'s results for each sample');

  // The CLI's UPDATE has the object as its own oldObject: every image is kept, none judged.
  // (It cannot give another oldObject, so the samples/updates reviews are not Kyverno's.)
  const asUpdate = join(scratch, 'kyverno-update-values.yaml');
  await writeFile(asUpdate, 'apiVersion: cli.kyverno.io/v1alpha1\nkind: Values\nmetadata: { name: update }\nglobalValues: { request.operation: UPDATE }\n');
  const denied = creates.filter((s) => s.expected === 'deny');
  const updated = await cli(kyverno, ['apply', join(dir, 'policy.yaml'), ...denied.flatMap((s) => ['--resource', s.path]), '--values-file', asUpdate, '--remove-color']);
  assert.equal(updated.code, 0, `an UPDATE that brings no new image passes: ${updated.stdout}${updated.stderr}`);
  assert.match(updated.stdout, /fail: 0, warn: 0, error: 0/, `an UPDATE that brings no new image passes: ${updated.stdout}`);

  // The shipped test manifest lists every sample with the decision expected.yaml gives it, and passes.
  const manifest = parse(await readFile(join(dir, 'kyverno-test.yaml'), 'utf8')) as { resources: string[]; results: { kind: string; result: string; resources: string[] }[] };
  const declared = new Map<string, string>();
  for (const result of manifest.results) for (const name of result.resources) declared.set(`${result.kind}/${name}`, result.result);
  for (const sample of creates) {
    const { object } = sample.review.request;
    const exempt = exemptNamespaces.includes(object.metadata.namespace ?? '');
    assert.ok(manifest.resources.includes(`../samples/${sample.name}`), `kyverno-test.yaml lists ${sample.name}`);
    assert.equal(declared.get(`${object.kind}/${object.metadata.name}`), exempt ? 'skip' : sample.expected === 'allow' ? 'pass' : 'fail', `kyverno-test.yaml: ${sample.name}'s result`);
  }
  const suite = await cli(kyverno, ['test', dir, '--remove-color']);
  assert.equal(suite.code, 0, `kyverno test ${dir} passes:\n${suite.stdout}\n${suite.stderr}`);
  // A policy Kyverno cannot load skips every result, and the test still passes.
  assert.doesNotMatch(suite.stdout, /Invalid Policy/, `kyverno test loads the policy:\n${suite.stdout}`);
  assert.match(suite.stdout, new RegExp(`Test Summary: ${creates.length} tests passed and 0 tests failed`), `kyverno test checks every sample:\n${suite.stdout}`);
});

test('Gatekeeper: gator test decides every sample as expected.yaml says, and gator verify passes', async () => {
  const gator = await goTool('gator');
  const dir = join(policiesDir, 'gatekeeper');

  // Each sample on its own, not through the shipped suite: its violations, one per unpatched image.
  const problems: string[] = [];
  for (const sample of creates) {
    const out = await cli(gator, ['test', '-f', join(dir, 'template.yaml'), '-f', join(dir, 'constraint.yaml'), '-f', sample.path, '-o', 'json']);
    // No violations print as `null`.
    const violations = (JSON.parse(out.stdout) as { msg: string }[] | null) ?? [];
    assert.equal(out.code, violations.length ? 1 : 0, `${sample.name}: gator test exits 1 exactly on violations: ${out.stdout}${out.stderr}`);
    record('gatekeeper', sample, violations.length ? 'deny' : 'allow');
    const named = violations.map((v) => v.msg.split(' is not patched by patchd: use ')[0]).sort();
    if (violations.length && JSON.stringify(named) !== JSON.stringify([...sample.denied].sort())) problems.push(`${sample.name}: violations for ${named.join(', ')}`);
  }
  // gator test reviews objects, not AdmissionReviews: an UPDATE goes through a suite of its own saying "no violations".
  for (const sample of updates) {
    const own = join(scratch, `suite-${sample.name.replaceAll('/', '-')}`);
    // gator joins a suite's paths to its directory, absolute or not.
    const from = (path: string) => relative(scratch, path);
    await writeFile(own, JSON.stringify({
      apiVersion: 'test.gatekeeper.sh/v1alpha1', kind: 'Suite',
      tests: [{ name: 'update', template: from(join(dir, 'template.yaml')), constraint: from(join(dir, 'constraint.yaml')), cases: [{ name: 'update', object: from(sample.path), assertions: [{ violations: 'no' }] }] }],
    }));
    const out = await cli(gator, ['verify', own]);
    assert.ok(out.code === 0 || /got \d+ violations but want none/.test(out.stdout + out.stderr), `${sample.name}: gator verify reviews it: ${out.stdout}${out.stderr}`);
    record('gatekeeper', sample, out.code === 0 ? 'allow' : 'deny');
  }
  assert.equal(disagreements('gatekeeper'), '', 'Gatekeeper disagrees with expected.yaml');
  assert.deepEqual(problems, [], 'a violation per unpatched image, naming it');

  // The shipped suite has a case per sample, with a violation per denied image, and passes.
  const suite = parse(await readFile(join(dir, 'suite.yaml'), 'utf8')) as { tests: { cases: { object: string; assertions: { violations: number | string; message?: string }[] }[] }[] };
  const cases = new Map(suite.tests.flatMap((t) => t.cases).map((c) => [c.object, c.assertions]));
  for (const sample of samples) {
    const assertions = cases.get(`../samples/${sample.name}`);
    assert.ok(assertions, `suite.yaml has a case for ${sample.name}`);
    assert.deepEqual(assertions[0], { violations: sample.expected === 'allow' ? 'no' : sample.denied.length }, `suite.yaml: ${sample.name}'s violations`);
  }
  const verify = await cli(gator, ['verify', dir]);
  assert.equal(verify.code, 0, `gator verify ${dir} passes:\n${verify.stdout}\n${verify.stderr}`);
});

test('ValidatingAdmissionPolicy on kube-apiserver decides every sample as expected.yaml says', async (t) => {
  const kube: Kube = await startKube();
  t.after(() => kube.stop());
  // kube-system too: its pods need the `default` ServiceAccount no controller makes here.
  for (const namespace of ['kube-system', 'patchd-system', 'demo']) await kube.createNamespace(namespace);
  const dir = join(policiesDir, 'validating-admission-policy');

  // What the UPDATE samples update, and the Pods `kubectl debug` adds to: created before the policy.
  for (const sample of updates) await kube.kubectl(['create', '-f', '-'], { input: JSON.stringify(sample.review.request.oldObject) });
  const debugged = creates.filter((s) => hasEphemeralContainers(s.review.request.object));
  for (const sample of debugged) await kube.kubectl(['create', '-f', '-'], { input: JSON.stringify(withoutEphemeralContainers(sample.review.request.object)) });

  await kube.kubectl(['apply', '-f', join(dir, 'policy.yaml'), '-f', join(dir, 'binding.yaml')]);
  // The API server enforces a new policy once its informer has it.
  const known = samples.find((s) => s.name === 'pod-unpatched.yaml')!;
  const deadline = Date.now() + 15_000;
  while ((await kubectlDecision(kube, known)).decision === 'allow') {
    assert.ok(Date.now() < deadline, 'the policy is enforced within 15 s of its creation');
    await new Promise((r) => setTimeout(r, 250));
  }

  const problems: string[] = [];
  for (const sample of samples) {
    const { decision, message } = await kubectlDecision(kube, sample);
    record('validating-admission-policy', sample, decision);
    for (const image of decision === 'deny' ? sample.denied : []) {
      if (!message.includes(`${image} is not patched by patchd: use `)) problems.push(`${sample.name}: the denial does not name ${image}: ${message}`);
    }
  }
  assert.equal(disagreements('validating-admission-policy'), '', 'the ValidatingAdmissionPolicy disagrees with expected.yaml');
  assert.deepEqual(problems, [], 'a denial names every unpatched image');
});

test('every engine decides every sample as patchd does', () => {
  const table = disagreementTable(samples, decisions);
  assert.equal(table, '', `disagreements ('-': the engine did not decide it):\n${table}`);
  const engines = ['patchd', 'kyverno', 'gatekeeper', 'validating-admission-policy'];
  assert.deepEqual(engines.filter((e) => !decisions.has(e)), [], 'every engine decided (see the failures above)');
});

/**
 * The API server's decision on a sample, without storing anything: a server
 * dry run of its creation, of its UPDATE (replacing the object created before
 * the policy), or of adding its ephemeral containers as `kubectl debug` does.
 */
async function kubectlDecision(kube: Kube, sample: PolicySample): Promise<{ decision: Decision; message: string }> {
  const { object, operation } = sample.review.request;
  let result: RunResult;
  if (operation === 'UPDATE') {
    result = await kube.kubectl(['replace', '--dry-run=server', '-f', '-'], { input: JSON.stringify(object), allowFailure: true });
  } else if (hasEphemeralContainers(object)) {
    const patch = { spec: { ephemeralContainers: (object.spec as { ephemeralContainers: unknown[] }).ephemeralContainers } };
    result = await kube.kubectl(['patch', 'pod', object.metadata.name, '-n', object.metadata.namespace!, '--subresource=ephemeralcontainers', '--type=strategic', '-p', JSON.stringify(patch), '--dry-run=server'], { allowFailure: true });
  } else {
    result = await kube.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(object), allowFailure: true });
  }
  if (result.code === 0) return { decision: 'allow', message: '' };
  assert.match(result.stderr, /ValidatingAdmissionPolicy 'patchd-require-patched-images' with binding 'patchd-require-patched-images' denied request: /, `${sample.name}: refused by the policy, not for another reason: ${result.stderr}`);
  return { decision: 'deny', message: result.stderr };
}

function hasEphemeralContainers(object: KubeObject): boolean {
  return object.kind === 'Pod' && Array.isArray((object.spec as { ephemeralContainers?: unknown[] }).ephemeralContainers);
}

function withoutEphemeralContainers(object: KubeObject): KubeObject {
  const { ephemeralContainers: _, ...spec } = object.spec as Record<string, unknown>;
  return { ...object, spec };
}

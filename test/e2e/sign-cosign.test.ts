import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '../../src/lib/log.js';
import { createRegistryClient } from '../../src/oci/client.js';
import { attachCosignSignature, cosignSignatureTag } from '../../src/publish/cosign.js';
import { loadSigner } from '../../src/publish/signing-key.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { goTool } from '../harness/go-tools.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { freePort, run, tmpDir, type RunResult, type TempDir } from '../harness/tools.js';

// Item 5 of issue 12: patchd signs what it pushes in cosign's format, and the
// real cosign (v3, built from the Go module proxy) verifies it with the public
// key: one key made by openssl (PKCS#8 PEM), one by `cosign generate-key-pair`
// (cosign's scrypt + secretbox encrypted key). patchd's own images, patched
// from the bookworm fixture in a real registry; no mock anywhere.

const repoRoot = new URL('../..', import.meta.url).pathname;
const cosignPassword = 'correct horse battery staple 7f3a';
let registry: RunningRegistry;
let work: TempDir;
let cosign: string;
let report: string;
const keys = { openssl: { key: '', pub: '' }, cosign: { key: '', pub: '' } };

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-sign');
  cosign = await goTool('cosign');
  keys.openssl = { key: join(work.path, 'openssl.pem'), pub: join(work.path, 'openssl.pub') };
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keys.openssl.key]);
  await run('openssl', ['pkey', '-in', keys.openssl.key, '-pubout', '-out', keys.openssl.pub]);
  await run(cosign, ['generate-key-pair'], { cwd: work.path, env: { ...process.env, COSIGN_PASSWORD: cosignPassword } });
  keys.cosign = { key: join(work.path, 'cosign.key'), pub: join(work.path, 'cosign.pub') };
  const tar = await bookwormRootfsTar();
  for (const repository of ['fixtures/signed-a', 'fixtures/signed-b', 'fixtures/signed-later']) await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository, tag: 'main' });
  // One fix (and what it needs): a short patch, still a real one.
  report = join(work.path, 'report.json');
  await writeFile(report, JSON.stringify({
    SchemaVersion: 2, ArtifactName: 'fixtures/bookworm:main',
    Results: [{ Target: 'fixtures/bookworm:main (debian 12)', Class: 'os-pkgs', Type: 'debian', Vulnerabilities: [
      { VulnerabilityID: 'TEST-0001', PkgName: 'libexpat1', InstalledVersion: '2.5.0-1+deb12u2', FixedVersion: '2.5.0-1+deb12u3', Severity: 'HIGH' },
    ] }],
  }));
});

after(async () => {
  await registry?.stop();
  await work?.remove();
});

/** `patchd patch` of one fixture repository, signing with `key`; debug logs, so that every line a key could leak into is written. */
function patchd(repository: string, key: string, password?: string, extra: readonly string[] = []): Promise<RunResult> {
  const env = { ...process.env };
  delete env.PATCHD_SIGNING_PASSWORD;
  if (password !== undefined) env.PATCHD_SIGNING_PASSWORD = password;
  return run('npx', ['--no-install', 'patchd', 'patch', '-i', `${registry.host}/${repository}:main`, '-r', report, '--sign-key', key,
    '--cache-dir', join(work.path, 'cache'), '--log-level', 'debug', '--progress', 'plain', ...extra], { cwd: repoRoot, env, allowFailure: true, timeoutMs: 15 * 60_000 });
}

/** `cosign verify --key` as a user runs it against a plain-HTTP registry with no transparency log. */
function cosignVerify(pub: string, image: string): Promise<RunResult> {
  return run(cosign, ['verify', '--key', pub, '--insecure-ignore-tlog', '--allow-http-registry', image], { allowFailure: true, timeoutMs: 120_000 });
}

function patchedDigest(result: RunResult): string {
  const digest = /patched .* -> \S+:main-patched \((sha256:[0-9a-f]{64})\)/.exec(result.stdout)?.[1];
  assert.ok(digest, `patchd reports the pushed digest (exit ${result.code}):\n${result.stdout}\n${result.stderr.slice(-3000)}`);
  return digest;
}

/** The base64 body lines of a PEM file: what a leaked key would look like in a log. */
async function pemLines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));
}

async function assertNoSecrets(output: string, secrets: readonly string[], what: string): Promise<void> {
  for (const secret of secrets) assert.ok(!output.includes(secret), `${what} must not contain the secret ${secret.slice(0, 6)}…`);
}

let signedA = '';
let signedB = '';

test('an openssl PKCS#8 key: cosign verify --key accepts the patched image, another key is refused', { timeout: 20 * 60_000 }, async () => {
  const result = await patchd('fixtures/signed-a', keys.openssl.key);
  assert.equal(result.code, 0, `patchd patch --sign-key exits 0:\n${result.stderr.slice(-3000)}`);
  signedA = patchedDigest(result);
  await assertNoSecrets(result.stdout + result.stderr, await pemLines(keys.openssl.key), 'patchd output');

  const image = `${registry.host}/fixtures/signed-a@${signedA}`;
  const ok = await cosignVerify(keys.openssl.pub, image);
  assert.equal(ok.code, 0, `cosign verify accepts patchd's signature:\n${ok.stderr}`);
  assert.ok(ok.stdout.includes(`"docker-manifest-digest":"${signedA}"`), `cosign prints the verified payload naming ${signedA}:\n${ok.stdout}`);
  assert.match(ok.stderr, /The signatures were verified against the specified public key/, 'cosign says it checked the key');

  const other = await cosignVerify(keys.cosign.pub, image);
  assert.notEqual(other.code, 0, `a different key is refused:\n${other.stdout}`);
  assert.match(other.stderr, /no matching signatures/i, `cosign says why:\n${other.stderr}`);

  const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/signed-a`])).stdout) as { Tags: string[] };
  assert.ok(tags.Tags.includes(cosignSignatureTag(signedA)), `the signature is under cosign's tag: ${tags.Tags.join(', ')}`);
  // By tag, as users type it: cosign resolves it to the signed digest.
  const byTag = await cosignVerify(keys.openssl.pub, `${registry.host}/fixtures/signed-a:main-patched`);
  assert.equal(byTag.code, 0, `cosign verify by tag:\n${byTag.stderr}`);
  assert.ok(byTag.stdout.includes(signedA), 'the tag resolves to the signed digest');
});

test('a multi-platform image: the patched index digest is signed and verifies; its platform manifests are not signed one by one', { timeout: 20 * 60_000 }, async () => {
  const tar = await bookwormRootfsTar();
  const amd64 = await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'fixtures/signed-multi', tag: 'amd64' });
  const arm64 = await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'fixtures/signed-multi', tag: 'arm64', architecture: 'arm64' });
  const client = createRegistryClient({ logger: createLogger({ level: 'silent' }), plainHttp: true });
  const sizeOf = async (tag: string) => (await client.getManifest(parseReference(`${registry.host}/fixtures/signed-multi:${tag}`))).bytes.length;
  const index = {
    schemaVersion: 2, mediaType: MediaType.ociIndex,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: amd64.digest, size: await sizeOf('amd64'), platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: MediaType.ociManifest, digest: arm64.digest, size: await sizeOf('arm64'), platform: { architecture: 'arm64', os: 'linux' } },
    ],
  };
  await client.putManifest(parseReference(`${registry.host}/fixtures/signed-multi:main`), Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
  const result = await patchd('fixtures/signed-multi', keys.openssl.key, undefined, ['--platform', 'linux/amd64']);
  assert.equal(result.code, 0, `patchd patch of an index with --sign-key:\n${result.stderr.slice(-3000)}`);
  const digest = patchedDigest(result);
  const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/fixtures/signed-multi@${digest}`])).stdout) as typeof index;
  assert.equal(raw.mediaType, MediaType.ociIndex, 'the signed digest is the patched index');
  const ok = await cosignVerify(keys.openssl.pub, `${registry.host}/fixtures/signed-multi@${digest}`);
  assert.equal(ok.code, 0, `cosign verify accepts the index's signature:\n${ok.stderr}`);
  assert.ok(ok.stdout.includes(digest), 'cosign names the index digest');
  const platform = await cosignVerify(keys.openssl.pub, `${registry.host}/fixtures/signed-multi@${raw.manifests[0]!.digest}`);
  assert.notEqual(platform.code, 0, 'a platform manifest has no signature of its own (as cosign sign without --recursive)');
});

test('a cosign generate-key-pair key (encrypted): verified by cosign; neither password nor key is logged', { timeout: 20 * 60_000 }, async () => {
  const result = await patchd('fixtures/signed-b', keys.cosign.key, cosignPassword);
  assert.equal(result.code, 0, `patchd patch --sign-key exits 0:\n${result.stderr.slice(-3000)}`);
  const digest = patchedDigest(result);
  signedB = digest;
  await assertNoSecrets(result.stdout + result.stderr, [cosignPassword, ...(await pemLines(keys.cosign.key))], 'patchd output');
  assert.match(result.stderr, /"msg":"signed"/, 'patchd logs that it signed');

  const image = `${registry.host}/fixtures/signed-b@${digest}`;
  const ok = await cosignVerify(keys.cosign.pub, image);
  assert.equal(ok.code, 0, `cosign verify accepts the signature made with cosign's own key format:\n${ok.stderr}`);
  assert.ok(ok.stdout.includes(`"docker-manifest-digest":"${digest}"`), `cosign names ${digest}:\n${ok.stdout}`);
  const other = await cosignVerify(keys.openssl.pub, image);
  assert.notEqual(other.code, 0, `the openssl key does not verify an image only the cosign key signed:\n${other.stdout}`);
  // And a signature is bound to its digest: the original (unsigned) image does not verify.
  const original = await cosignVerify(keys.cosign.pub, `${registry.host}/fixtures/signed-b:main`);
  assert.notEqual(original.code, 0, 'the unsigned original does not verify');
});

test('a wrong or missing password fails clearly before anything is pushed, and the password is not echoed', { timeout: 5 * 60_000 }, async () => {
  const before = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/signed-b`])).stdout) as { Tags: string[] };
  const wrong = 'not-the-password-91c2';
  const result = await patchd('fixtures/signed-b', keys.cosign.key, wrong);
  assert.equal(result.code, 1, `a wrong password is a failure:\n${result.stderr}`);
  assert.match(result.stderr, /cannot decrypt the signing key .*cosign\.key: wrong password \[SIGNING_PASSWORD_WRONG\]/, `the error says what is wrong:\n${result.stderr}`);
  await assertNoSecrets(result.stdout + result.stderr, [wrong, cosignPassword], 'patchd output');

  const missing = await patchd('fixtures/signed-b', keys.cosign.key);
  assert.equal(missing.code, 1, 'a missing password is a failure');
  assert.match(missing.stderr, /PATCHD_SIGNING_PASSWORD.*\[SIGNING_PASSWORD_MISSING\]/, `the error names the variable:\n${missing.stderr}`);

  // serve refuses to start with a key it cannot decrypt.
  const config = join(work.path, 'bad-signing.yaml');
  await writeFile(config, ['server: { host: 127.0.0.1, port: 0 }', `dataDir: ${JSON.stringify(join(work.path, 'bad-data'))}`, `signing: { keyFile: ${JSON.stringify(keys.cosign.key)} }`,
    'registries:', `  local: { url: "http://${registry.host}" }`].join('\n'));
  const serve = await run('node', [join(repoRoot, 'bin/patchd.js'), 'serve', '--config', config], { env: { ...process.env, PATCHD_SIGNING_PASSWORD: wrong }, allowFailure: true, timeoutMs: 60_000 });
  assert.equal(serve.code, 1, `serve exits 1 with a wrong signing password:\n${serve.stderr}`);
  assert.match(serve.stderr, /wrong password \[SIGNING_PASSWORD_WRONG\]/, `serve says why:\n${serve.stderr}`);
  await assertNoSecrets(serve.stdout + serve.stderr, [wrong], 'patchd serve output');

  const afterTags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/signed-b`])).stdout) as { Tags: string[] };
  assert.deepEqual(afterTags.Tags.sort(), before.Tags.sort(), 'nothing was pushed');
});

test('a second key appends its signature to the .sig manifest, as cosign does; signing again with it adds nothing', { timeout: 5 * 60_000 }, async () => {
  assert.ok(signedA, 'the first test signed fixtures/signed-a');
  const client = createRegistryClient({ logger: createLogger({ level: 'silent' }), plainHttp: true });
  const repo = { registry: registry.host, repository: 'fixtures/signed-a' };
  const signer = await loadSigner({ keyFile: keys.cosign.key, password: cosignPassword });
  const first = await attachCosignSignature({ client, repo, digest: signedA, signer, logger: createLogger({ level: 'silent' }) });
  assert.equal(first.appended, true, 'appended to the existing signature manifest');
  const again = await attachCosignSignature({ client, repo, digest: signedA, signer, logger: createLogger({ level: 'silent' }) });
  assert.equal(again.manifestDigest, first.manifestDigest, 'the same key on the same payload is not added twice');
  const sig = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/fixtures/signed-a:${first.tag}`])).stdout) as { layers: unknown[] };
  assert.equal(sig.layers.length, 2, 'two signatures, one layer each');

  const image = `${registry.host}/fixtures/signed-a@${signedA}`;
  for (const pub of [keys.openssl.pub, keys.cosign.pub]) {
    const ok = await cosignVerify(pub, image);
    assert.equal(ok.code, 0, `both keys verify (${pub}):\n${ok.stderr}`);
  }
});

test("Kyverno: the shipped verify-signature policy admits patchd's signed images (by digest and by tag) and denies the rest", { timeout: 5 * 60_000 }, async () => {
  assert.ok(signedA && signedB, 'the tests above signed fixtures/signed-a and fixtures/signed-b');
  const kyverno = await goTool('kyverno');
  // The shipped policy with what its comment says to fill in: patchd's public key (the openssl one) and the registry.
  const shipped = await readFile(join(repoRoot, 'deploy/policies/kyverno/verify-signature.yaml'), 'utf8');
  const pub = (await readFile(keys.openssl.pub, 'utf8')).trim().split('\n').map((l) => `                      ${l}`).join('\n');
  const policy = shipped
    .replace('"registry.example.com/*"', `"${registry.host}/fixtures/*"`)
    .replace(/ *-----BEGIN PUBLIC KEY-----\n.*\n *-----END PUBLIC KEY-----/, pub);
  assert.notEqual(policy, shipped, 'the placeholders were filled in');
  const policyPath = join(work.path, 'verify-signature.yaml');
  await writeFile(policyPath, policy);
  const pods: [string, string, string][] = [
    ['signed-digest', 'default', `${registry.host}/fixtures/signed-a@${signedA}`],
    ['signed-tag', 'default', `${registry.host}/fixtures/signed-a:main-patched`],
    ['other-key', 'default', `${registry.host}/fixtures/signed-b@${signedB}`],
    ['unsigned', 'default', `${registry.host}/fixtures/signed-a:main`],
    ['exempt', 'kube-system', `${registry.host}/fixtures/signed-a:main`],
  ];
  const files: string[] = [];
  for (const [name, namespace, image] of pods) {
    const path = join(work.path, `pod-${name}.yaml`);
    await writeFile(path, `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name}, namespace: ${namespace} }\nspec:\n  containers:\n    - name: app\n      image: ${image}\n`);
    files.push('--resource', path);
  }
  const applied = await run(kyverno, ['apply', policyPath, ...files, '--registry', '--remove-color'], { allowFailure: true, timeoutMs: 180_000 });
  const out = applied.stdout + applied.stderr;
  const failed = new Set([...out.matchAll(/resource \S+\/Pod\/(\S+) failed/g)].map((m) => m[1]));
  assert.deepEqual([...failed].sort(), ['other-key', 'unsigned'], `denied: the image only another key signed and the unsigned original; admitted: patchd's signed image by digest and by tag:\n${out}`);
  assert.match(out, /signed-b@sha256:[0-9a-f]{64}: .*no matching signatures/, 'the other key: no matching signature');
  assert.match(out, /signed-a:main: .*no signatures found|signed-a@sha256:[0-9a-f]{64}: .*no signatures found/, 'the original: no signature at all');
  assert.equal(applied.code, 1, 'kyverno apply exits 1 when a rule fails');
});

test('patchd serve with `signing` in its config signs what its worker pushes; the signature push is not patched', { timeout: 15 * 60_000 }, async () => {
  const osvDir = join(work.path, 'osv');
  await mkdir(osvDir);
  // expat, fixed in 2.5.0-1+deb12u5 (the fixture has deb12u2): one fix, a short patch.
  await copyFile(join(repoRoot, 'fixtures/osv/Debian/DEBIAN-CVE-2026-102633.json'), join(osvDir, 'DEBIAN-CVE-2026-102633.json'));
  const registryPort = await freePort();
  const servePassword = 'serve-pass-4e1d';
  await run(cosign, ['generate-key-pair', '--output-key-prefix', 'serve'], { cwd: work.path, env: { ...process.env, COSIGN_PASSWORD: servePassword } });
  let server: RunningPatchd | undefined;
  let serveRegistry: RunningRegistry | undefined;
  let logs = '';
  try {
    server = await startPatchdServe({
      dir: work.path,
      config: () => [
        `dataDir: ${JSON.stringify(join(work.path, 'serve-data'))}`,
        `cacheDir: ${JSON.stringify(join(work.path, 'cache'))}`,
        'worker: { concurrency: 1, retryBaseMs: 500 }',
        `advisories: { osv: [${JSON.stringify(osvDir)}] }`,
        `signing: { keyFile: ${JSON.stringify(join(work.path, 'serve.key'))}, passwordEnv: SERVE_SIGNING_PASSWORD }`,
        'registries:',
        '  local:',
        `    url: http://127.0.0.1:${registryPort}`,
        '    webhookSecret: change-me',
      ],
      env: { PATCHD_LOCAL_WEBHOOK_SECRET: 'hook-secret', SERVE_SIGNING_PASSWORD: servePassword, PATCHD_LOG_LEVEL: 'debug' },
      logs: 'pipe',
    });
    server.child.stderr?.on('data', (chunk: Buffer) => { logs += chunk.toString(); });
    serveRegistry = await startRegistry({ port: registryPort, notifications: { url: `${server.url}/webhooks/distribution`, headers: { Authorization: ['Bearer hook-secret'] } } });
    await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: serveRegistry.host, repository: 'fixtures/served', tag: 'main' });

    interface Job { id: string; status: string; tag?: string; result?: { target?: string; digest?: string; signature?: { tag: string } } }
    let jobs: Job[] = [];
    for (let i = 0; i < 1200 && !jobs.some((j) => j.status === 'succeeded' || j.status === 'failed'); i++) {
      await new Promise((r) => setTimeout(r, 500));
      jobs = ((await (await fetch(`${server.url}/jobs`)).json()) as { jobs: Job[] }).jobs;
    }
    const done = jobs.find((j) => j.status === 'succeeded');
    assert.ok(done?.result?.digest, `the push was patched: ${JSON.stringify(jobs)}\n${logs.slice(-3000)}`);
    const digest = done.result.digest;
    assert.equal(done.result.signature?.tag, cosignSignatureTag(digest), `the job reports its signature: ${JSON.stringify(done.result)}`);
    const ok = await cosignVerify(join(work.path, 'serve.pub'), `${serveRegistry.host}/fixtures/served@${digest}`);
    assert.equal(ok.code, 0, `cosign verify accepts the worker's signature:\n${ok.stderr}`);
    assert.ok(ok.stdout.includes(digest), `cosign names ${digest}`);

    // The registry notifies patchd of the .sig push too: it is ignored, not queued as an image to patch.
    const sigTag = cosignSignatureTag(digest);
    let metrics = '';
    for (let i = 0; i < 100 && !/outcome="ignored"/.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 200));
      metrics = await (await fetch(`${server.url}/metrics`)).text();
    }
    await new Promise((r) => setTimeout(r, 2000)); // late notifications
    jobs = ((await (await fetch(`${server.url}/jobs`)).json()) as { jobs: Job[] }).jobs;
    assert.deepEqual(jobs.filter((j) => j.tag === sigTag || /^sha256-/.test(j.tag ?? '')), [], `no job for the signature or referrer tags: ${JSON.stringify(jobs)}`);
    // (Digest-only pushes, the patched manifest's and the referrers', are queued and skipped as before: no tag to patch under.)
    const patchJobs = jobs.filter((j) => j.tag !== undefined);
    assert.deepEqual(patchJobs.map((j) => j.tag), ['main'], `one tagged job, for the image: ${JSON.stringify(jobs)}`);
    await assertNoSecrets(logs, [servePassword, ...(await pemLines(join(work.path, 'serve.key')))], 'patchd serve logs');
    assert.match(logs, /"msg":"signed"/, 'the worker logs that it signed');
  } finally {
    await server?.stop();
    await serveRegistry?.stop();
  }
});

test('an up-to-date patch still unsigned (patched before signing was set up, or a signing that failed) is signed when patched again', { timeout: 20 * 60_000 }, async () => {
  const unsigned = await run('npx', ['--no-install', 'patchd', 'patch', '-i', `${registry.host}/fixtures/signed-later:main`, '-r', report,
    '--cache-dir', join(work.path, 'cache'), '--progress', 'plain'], { cwd: repoRoot, allowFailure: true, timeoutMs: 15 * 60_000 });
  assert.equal(unsigned.code, 0, `patched without a key:\n${unsigned.stderr.slice(-3000)}`);
  const digest = patchedDigest(unsigned);
  const image = `${registry.host}/fixtures/signed-later@${digest}`;
  assert.notEqual((await cosignVerify(keys.openssl.pub, image)).code, 0, 'not signed yet');

  const again = await patchd('fixtures/signed-later', keys.openssl.key);
  assert.equal(again.code, 0, `patched again with a key:\n${again.stderr.slice(-3000)}`);
  assert.match(again.stdout, /up to date/i, `nothing new to fix:\n${again.stdout}`);
  const tagged = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/fixtures/signed-later:main-patched`])).stdout) as unknown;
  assert.ok(tagged, 'the tag still resolves');
  const verified = await cosignVerify(keys.openssl.pub, `${registry.host}/fixtures/signed-later:main-patched`);
  assert.equal(verified.code, 0, `the existing patch is now signed:\n${verified.stderr}`);
  assert.ok(verified.stdout.includes(digest), `the same digest, not a new patch: ${verified.stdout}`);
});

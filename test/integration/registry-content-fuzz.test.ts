import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { auditRegistry } from '../harness/registry-audit.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { tmpDir, type TempDir } from '../harness/tools.js';

// Manifests and configs a registry serves, fuzzed with fast-check: a loopback
// proxy in front of a real registry answers for one image with bytes of the
// test's making — malformed JSON, over 4 MiB, wrong media types, content that
// does not hash to its digest, configs and layer descriptors that lie — while
// everything else (the real base layer) comes from the registry. A `patchd
// serve` job for each must end with a clear error (or a reasoned skip), the
// service keeps running, and nothing is pushed. FC_SEED=<n> replays a run.
// Build first: `npx tsc -p tsconfig.build.json` (serve runs dist/).

const numRuns = 45;
const fuzzSeed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
const repository = 'fuzz/app';
const ociManifest = 'application/vnd.oci.image.manifest.v1+json';
const ociConfig = 'application/vnd.oci.image.config.v1+json';
const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

let registry: RunningRegistry;
let proxy: FaultProxy;
let serve: RunningPatchd;
let work: TempDir;
let baseManifest: { schemaVersion: number; mediaType: string; config: { mediaType: string; digest: string; size: number }; layers: { mediaType: string; digest: string; size: number }[] };
let baseConfig: Record<string, unknown> & { rootfs: { type: string; diff_ids: string[] } };

before(async () => {
  work = await tmpDir('patchd-content-fuzz');
  registry = await startRegistry();
  const pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository, tag: 'base' });
  baseManifest = await (await fetch(`${registry.url}/v2/${repository}/manifests/${pushed.digest}`, { headers: { accept: ociManifest } })).json() as typeof baseManifest;
  baseConfig = await (await fetch(`${registry.url}/v2/${repository}/blobs/${baseManifest.config.digest}`)).json() as typeof baseConfig;
  proxy = await startFaultProxy({ target: registry.url });
  proxy.setPlan((req) => {
    if (!current || (req.method !== 'GET' && req.method !== 'HEAD')) return undefined;
    const path = req.path.split('?')[0]!;
    const repo = current.repository ?? repository;
    const manifestHeaders = { 'content-type': current.contentType, 'docker-content-digest': current.digest };
    if (path === `/v2/${repo}/manifests/${current.digest}` || path === `/v2/${repo}/manifests/fuzzed`) return { kind: 'status', status: 200, headers: manifestHeaders, body: current.manifest };
    const blob = /\/blobs\/(.+)$/.exec(path)?.[1];
    const replaced = blob ? current.blobs.get(blob) : undefined;
    if (replaced) return { kind: 'status', status: 200, headers: { 'content-type': 'application/octet-stream', 'docker-content-digest': blob! }, body: replaced };
    return undefined;
  });
  serve = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      `cacheDir: ${JSON.stringify(join(work.path, 'cache'))}`,
      // One attempt: a job's first error is its last, so each case is judged on it.
      'worker: { concurrency: 1, maxAttempts: 1 }',
      'registries:',
      `  local: { url: "${proxy.url}", webhookSecret: "s3cret" }`,
    ],
  });
});

after(async () => {
  await serve?.stop();
  await proxy?.stop();
  await registry?.stop();
  await work?.remove();
});

/** What the proxy answers for the case's image: its manifest (under `digest`, and its tag), and blobs by digest. */
interface Served {
  readonly kind: string;
  /** Where it is served: the fuzzing's repository unless a fixed case has one of its own. */
  readonly repository?: string;
  readonly manifest: Buffer;
  readonly contentType: string;
  /** The digest the webhook names and the manifest is served under (not always what it hashes to). */
  readonly digest: string;
  readonly blobs: ReadonlyMap<string, Buffer>;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
function image(manifest: unknown, kind: string, blobs: [string, Buffer][] = [], contentType = ociManifest): Served {
  const bytes = Buffer.isBuffer(manifest) ? manifest : json(manifest);
  return { kind, manifest: bytes, contentType, digest: sha256(bytes), blobs: new Map(blobs) };
}
/** The base manifest with a config of our making (served under its own digest and size). */
function withConfig(config: Buffer, kind: string, descriptor: Partial<{ digest: string; size: number; mediaType: string }> = {}): Served {
  const digest = descriptor.digest ?? sha256(config);
  return image({ ...baseManifest, config: { mediaType: ociConfig, digest: sha256(config), size: config.length, ...descriptor } }, kind, [[digest, config]]);
}

/** The cases, built once the base image is known. */
function fuzzedImages(): fc.Arbitrary<Served> {
  const malformedJson = fc.oneof(
    fc.integer({ min: 1, max: 400 }).map((cut) => image(json(baseManifest).subarray(0, cut), 'manifest: truncated JSON')),
    fc.uint8Array({ minLength: 1, maxLength: 1024 }).map((a) => image(Buffer.from(a), 'manifest: random bytes')),
    // Objects and arrays only: null, numbers and strings have a test of their own below.
    fc.oneof(fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 }), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 })).map((v) => image(json(v), 'manifest: JSON that is no manifest')),
    fc.record({ schemaVersion: fc.jsonValue({ maxDepth: 1 }), config: fc.jsonValue({ maxDepth: 2 }), layers: fc.jsonValue({ maxDepth: 2 }) }).map((m) => image({ mediaType: ociManifest, ...m }, 'manifest: fields of the wrong type')),
  );
  const huge = fc.integer({ min: 1, max: 1_000_000 }).map((extra) => image({ ...baseManifest, annotations: { pad: 'x'.repeat(4 * 1024 * 1024 + extra) } }, 'manifest: over 4 MiB'));
  const wrongMediaType = fc.oneof(
    fc.constantFrom('application/vnd.oci.image.layer.v1.tar+gzip', ociConfig, 'text/html', 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.oci.artifact.manifest.v1+json'),
    fc.string({ maxLength: 60 }),
  ).map((type) => image({ ...baseManifest, mediaType: type }, 'manifest: wrong media type', [], type.replace(/[^\x20-\x7e]/g, '') || 'application/octet-stream'));
  const wrongManifestDigest = fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => ({ ...image(baseManifest, 'manifest: content does not hash to its digest'), digest: `sha256:${hex}` }));
  const badConfig = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 512 }).map((a) => withConfig(Buffer.from(a), 'config: random bytes')),
    fc.integer({ min: 1, max: 300 }).map((cut) => withConfig(json(baseConfig).subarray(0, cut), 'config: truncated JSON')),
    fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => withConfig(json(baseConfig), 'config: content does not hash to its digest', { digest: `sha256:${hex}` })),
    fc.integer({ min: 1, max: 1000 }).map((delta) => withConfig(json(baseConfig), 'config: size that lies', { size: json(baseConfig).length + delta })),
    fc.constantFrom<[string, unknown]>(
      ['config: no diff_ids', { ...baseConfig, rootfs: { type: 'layers' } }],
      ['config: a diff_id too many', { ...baseConfig, rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, sha256('extra')] } }],
      ['config: diff_ids not a list', { ...baseConfig, rootfs: { type: 'layers', diff_ids: 'sha256:abc' } }],
      ['config: rootfs null', { ...baseConfig, rootfs: null }],
      ['config: an array', [baseConfig]],
    ).map(([kind, config]) => withConfig(json(config), kind)),
  );
  const badLayers = fc.oneof(
    fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => image({ ...baseManifest, layers: [{ ...baseManifest.layers[0]!, digest: `sha256:${hex}` }] }, 'layer: a digest the registry does not have')),
    fc.constantFrom('sha256:zz', 'md5:abc', '', '../../etc/passwd', `sha256:${'A'.repeat(64)}`).map((digest) => image({ ...baseManifest, layers: [{ ...baseManifest.layers[0]!, digest }] }, 'layer: malformed digest')),
    fc.constant(image({ ...baseManifest, config: { ...baseManifest.config, digest: `sha256:${'0'.repeat(64)}` } }, 'config: a digest the registry does not have')),
  );
  return fc.oneof({ weight: 4, arbitrary: malformedJson }, { weight: 1, arbitrary: huge }, { weight: 2, arbitrary: wrongMediaType }, { weight: 1, arbitrary: wrongManifestDigest }, { weight: 5, arbitrary: badConfig }, { weight: 4, arbitrary: badLayers });
}

interface Job { id: string; status: string; lastError?: string; result?: { reason?: string } }

let current: Served | undefined;
let run = 0;

/** Serves `served` for the image, delivers its push, and judges the job; returns its outcome in words. */
async function judge(served: Served, label: string): Promise<string | undefined> {
  current = served;
  run++;
  const logFrom = proxy.log.length;
  const res = await fetch(`${serve.url}/webhooks/distribution`, {
    method: 'POST',
    headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
    body: JSON.stringify({ events: [{ action: 'push', target: { mediaType: ociManifest, repository: served.repository ?? repository, digest: served.digest, tag: 'fuzzed' }, request: { host: proxy.host, useragent: 'docker/27' } }] }),
  });
  const accepted = await res.json() as { jobs?: { id: string; duplicate: boolean }[] };
  assert.equal(res.status, 202, `delivery accepted: ${JSON.stringify(accepted)}`);
  const { id, duplicate } = accepted.jobs![0]!;
  if (duplicate) return undefined; // the same bytes again: the job that judged them stands
  let job: Job | undefined;
  for (const deadline = Date.now() + 90_000; Date.now() < deadline;) {
    job = await (await fetch(`${serve.url}/jobs/${id}`)).json() as Job;
    if (job.status !== 'queued' && job.status !== 'running') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const summary = `${served.kind} (${label}, run ${run}): ${JSON.stringify({ status: job?.status, lastError: job?.lastError, reason: job?.result?.reason })}`;
  assert.ok(job?.status === 'dead' || job?.status === 'skipped', `the job ends failed or skipped, never patched: ${summary}`);
  if (job.status === 'dead') {
    assert.match(job.lastError ?? '', /^[A-Z][A-Z_]+: \S/, `a coded, worded error: ${summary}`);
    assert.doesNotMatch(job.lastError ?? '', /^INTERNAL:/, `not an internal error (a bug): ${summary}`);
  } else assert.ok((job.result?.reason ?? '').length > 0, `a skip says why: ${summary}`);
  assert.equal(serve.child.exitCode, null, `patchd serve still runs: ${summary}`);
  // (A PUT the registry refused pushed nothing; a refused one shows in the outcome's code.)
  const puts = proxy.log.slice(logFrom).filter((r) => r.method === 'PUT' && r.path.includes('/manifests/') && r.status !== undefined && r.status < 300).map((r) => r.path);
  assert.deepEqual(puts, [], `a job that did not patch pushed no manifest: ${summary}`);
  const refused = proxy.log.slice(logFrom).some((r) => r.method === 'PUT' && r.path.includes('/manifests/'));
  return `${served.kind} → ${job.status === 'dead' ? job.lastError!.split(':')[0] : 'skipped'}${refused ? ' (a manifest PUT the registry refused)' : ''}`;
}

/** Nothing pushed to `repo`: it holds no tag but `base` (the fuzzing's) and everything in it verifies. */
async function assertNothingPushed(repo: string, baseTags: string[]): Promise<void> {
  assert.equal((await fetch(`${serve.url}/healthz`)).status, 200, '/healthz answers');
  const audit = await auditRegistry(registry.url);
  assert.deepEqual(audit.tags.get(repo) ?? [], baseTags, `no tag was pushed to ${repo}: ${audit.tags.get(repo)}`);
  assert.deepEqual(audit.problems.filter((p) => p.startsWith(`${repo}@`)), [], `everything in ${repo} verifies`);
  const puts = proxy.log.filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/${repo}/manifests/`) && r.status !== undefined && r.status < 300);
  assert.deepEqual(puts.map((r) => r.path), [], `the registry took no manifest in ${repo}`);
}

/** A repository of its own for a fixed case: the base image's blobs mounted into it, no tags. */
async function ownRepository(name: string): Promise<string> {
  const repo = `fuzz/${name}`;
  for (const digest of [baseManifest.layers[0]!.digest, baseManifest.config.digest]) {
    const res = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/?mount=${digest}&from=${repository}`, { method: 'POST' });
    await res.arrayBuffer();
    assert.equal(res.status, 201, `${digest} mounted into ${repo}`);
  }
  return repo;
}

test(`${numRuns} fuzzed manifests and configs served by the registry: each serve job ends with a clear error, the service keeps running, nothing is pushed`, { timeout: 4 * 60_000 }, async () => {
  console.log(`fast-check seed ${fuzzSeed} (replay: FC_SEED=${fuzzSeed})`);
  const outcomes = new Map<string, number>();
  await fc.assert(fc.asyncProperty(fuzzedImages(), async (served) => {
    const outcome = await judge(served, `seed ${fuzzSeed}`);
    if (outcome) outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }), { numRuns, seed: fuzzSeed, endOnFailure: true });
  current = undefined;
  console.log([...outcomes].sort().map(([k, n]) => `  ${k}: ${n}`).join('\n'));
  await assertNothingPushed(repository, ['base']);
});

// Kept out of the fuzzing so it names itself when it fails: a config whose diff_id is not its layer's
// must not be carried into a patched image (the base layer's diff_id is checked against its content).
test('a config whose diff_id is not its layer\'s uncompressed digest: the job fails, nothing is pushed', { timeout: 2 * 60_000 }, async () => {
  const repo = await ownRepository('diff-id');
  const config = json({ ...baseConfig, rootfs: { type: 'layers', diff_ids: [sha256('not the layer')] } });
  await judge({ ...withConfig(config, 'config: a diff_id that is not the layer\'s'), repository: repo }, 'fixed case');
  current = undefined;
  await assertNothingPushed(repo, []);
});

// Also named on its own: a layer whose media type is no layer type (text/plain) must be refused, not
// sniffed, patched and carried into the patched manifest.
test('a layer whose media type is no layer type: the job fails, nothing is pushed', { timeout: 2 * 60_000 }, async () => {
  const repo = await ownRepository('layer-media-type');
  for (const mediaType of ['text/plain', 'application/x-foo', 'application/vnd.oci.image.layer.v1.tar+lz4']) {
    await judge({ ...image({ ...baseManifest, layers: [{ ...baseManifest.layers[0]!, mediaType }] }, `layer: media type ${mediaType}`), repository: repo }, 'fixed case');
  }
  current = undefined;
  await assertNothingPushed(repo, []);
});

// And this one: a layer descriptor whose size is not the blob's (larger or smaller) must fail the job,
// rather than be copied into the patched manifest.
test('a layer descriptor whose size lies: the job fails, nothing is pushed', { timeout: 2 * 60_000 }, async () => {
  const repo = await ownRepository('layer-size');
  for (const delta of [-1, 1, 4096]) {
    await judge({ ...image({ ...baseManifest, layers: [{ ...baseManifest.layers[0]!, size: baseManifest.layers[0]!.size + delta }] }, `layer: size off by ${delta}`), repository: repo }, 'fixed case');
  }
  current = undefined;
  await assertNothingPushed(repo, []);
});

// A manifest that is JSON but not an object (null, a number, a string) is MANIFEST_INVALID, never a TypeError.
test('a manifest that is JSON null, a number or a string: the job fails as MANIFEST_INVALID, not INTERNAL', { timeout: 2 * 60_000 }, async () => {
  const repo = await ownRepository('json-scalars');
  for (const body of ['null', '42', '"a string"', 'true']) {
    const outcome = await judge({ ...image(Buffer.from(body), `manifest: ${body}`), repository: repo }, 'fixed case');
    assert.ok(outcome === undefined || outcome.includes('MANIFEST_INVALID'), `${body}: ${outcome}`);
  }
  current = undefined;
  await assertNothingPushed(repo, []);
});

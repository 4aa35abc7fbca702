import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { startFaultProxy, type Fault, type FaultProxy, type ProxiedRequest } from '../harness/fault-proxy.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';
import { auditRegistry, skopeoCopyAndRehash } from '../harness/registry-audit.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';
import { startToxiproxy, type RunningToxiproxy, type Toxic, type ToxiproxyProxy } from '../harness/toxiproxy.js';

// `patchd serve` patches a batch of pushes while its registry misbehaves:
//   patchd → Toxiproxy (TCP: resets mid-body, stalls, data cut after N bytes, latency, slicing)
//          → fault-proxy (HTTP: 503 and 429 with registry error bodies, stalls, cut bodies, lost answers, corrupted bodies)
//          → the real registry.
// Without corruption every job must complete and everything in the registry must verify, read
// from the registry itself (skopeo copy + every blob re-hashed). With corruption, jobs fail or
// retry with errors naming the digest, nothing invalid lands in the registry, and no job that
// died ever reports success or leaves a patched tag. Both tests run on each queue backend: SQLite
// (the default) and Redis (`queue: { redis }`), each with repositories of its own.
// Build first: `npx tsc -p tsconfig.build.json` (serve runs dist/).

const seed = 'patchd-serve-faults-1';
let registry: RunningRegistry;
let toxiproxy: RunningToxiproxy;
let tcp: ToxiproxyProxy;
let faults: FaultProxy;
let work: TempDir;
let redis: RunningRedis;
const servers: RunningPatchd[] = [];
const backends = ['sqlite', 'redis'] as const;
type Backend = (typeof backends)[number];
/** Per repository: the manifest digest, config digest and own (second) layer digest of its image. */
interface ImageDigests { digest: string; config: string; ownLayer: string }
const images = new Map<string, ImageDigests>();

const clean = (backend: Backend, i: number) => `${backend}/clean-${i}`;
const corrupt = (backend: Backend, i: number) => `${backend}/corrupt-${i}`;
const cleanCount = 4;
const corruptCount = 4;

/** A number in [0, 1) fixed by the seed and the parts. */
function roll(...parts: (string | number)[]): number {
  return createHash('sha256').update([seed, ...parts].join('|')).digest().readUInt32BE(0) / 2 ** 32;
}

/** A small layer of its own per repository, so every image (manifest, config, top layer) has digests no other shares. */
async function ownLayer(name: string): Promise<string> {
  const path = join(work.path, `${name.replace(/\//g, '-')}.tar`);
  const pack = tar.pack();
  pack.entry({ name: 'etc/patchd-fixture', mode: 0o644 }, `${name}\n`);
  pack.finalize();
  await pipeline(pack, createWriteStream(path));
  return path;
}

before(async () => {
  work = await tmpDir('patchd-serve-faults');
  registry = await startRegistry();
  const base = await bookwormRootfsTar();
  const [first, ...others] = backends;
  for (const [name, count] of [[clean, cleanCount], [corrupt, corruptCount]] as const) {
    for (let i = 0; i < count; i++) {
      const repository = name(first, i);
      const pushed = await pushRootfsImage({ tarPath: base, extraLayers: [await ownLayer(repository)], registryHost: registry.host, repository, tag: 'main' });
      const manifest = await (await fetch(`${registry.url}/v2/${repository}/manifests/${pushed.digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json() as { config: { digest: string }; layers: { digest: string }[] };
      images.set(repository, { digest: pushed.digest, config: manifest.config.digest, ownLayer: manifest.layers[1]!.digest });
      // The same image for the other backends, in repositories of their own (blobs mounted, digests kept).
      for (const other of others) {
        await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests', `docker://${registry.host}/${repository}:main`, `docker://${registry.host}/${name(other, i)}:main`]);
        images.set(name(other, i), images.get(repository)!);
      }
    }
  }
  redis = await startRedis();
  faults = await startFaultProxy({ target: registry.url });
  toxiproxy = await startToxiproxy();
  tcp = await toxiproxy.createProxy('registry', faults.host);
});

after(async () => {
  for (const server of servers) await server.stop();
  await toxiproxy?.stop();
  await redis?.stop();
  await faults?.stop();
  await registry?.stop();
  await work?.remove();
});

async function startServe(backend: Backend, name: string, worker: string): Promise<RunningPatchd & { logs: () => string }> {
  const server = await startPatchdServe({
    dir: work.path,
    config: () => [
      ...(backend === 'redis' ? [`queue: { redis: { url: "${redis.url}", prefix: "${name}" } }`] : []),
      `dataDir: ${JSON.stringify(join(work.path, `data-${name}`))}`,
      `cacheDir: ${JSON.stringify(join(work.path, `cache-${name}`))}`,
      `worker: ${worker}`,
      'registries:',
      // patchd reaches the registry only through both proxies.
      `  local: { url: "${tcp.url}", webhookSecret: "s3cret" }`,
    ],
    env: { PATCHD_LOG_LEVEL: 'debug' },
    logs: 'pipe',
  });
  let logs = '';
  server.child.stderr?.on('data', (chunk: Buffer) => { logs += chunk.toString(); });
  servers.push(server);
  return { ...server, logs: () => logs };
}

async function deliver(url: string, repositories: readonly string[]): Promise<void> {
  const events = repositories.map((repository, i) => ({
    id: `${repository}-${i}`, action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository, digest: images.get(repository)!.digest, tag: 'main' },
    request: { host: tcp.host, method: 'PUT', useragent: 'docker/27' },
  }));
  const res = await fetch(`${url}/webhooks/distribution`, { method: 'POST', body: JSON.stringify({ events }), headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' } });
  const body = await res.text();
  assert.equal(res.status, 202, `delivery accepted: ${body}`);
}

interface Job { id: string; repository: string; status: string; attempts: number; lastError?: string; result?: { digest?: string; target?: string } }

/** Polls /jobs until none is queued or running; `seen` records every job state observed on the way. */
async function settle(url: string, expected: number, deadlineMs: number, seen: Job[]): Promise<Job[]> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const jobs = ((await (await fetch(`${url}/jobs?limit=1000`)).json()) as { jobs: Job[] }).jobs;
    seen.push(...jobs);
    if (jobs.length >= expected && jobs.every((j) => j.status !== 'queued' && j.status !== 'running')) return jobs;
    if (Date.now() > deadline) assert.fail(`jobs still unfinished after ${deadlineMs} ms: ${JSON.stringify(jobs.map((j) => [j.repository, j.status, j.attempts, j.lastError]))}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A request's identity across attempts: upload session ids and query strings left out. */
function keyOf(req: ProxiedRequest): string {
  return `${req.method} ${req.path.split('?')[0]!.replace(/\/blobs\/uploads\/[^/]+$/, '/blobs/uploads/*')}`;
}

const throttled: Fault = { kind: 'status', status: 429, headers: { 'retry-after': '1' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' };
const unavailable: Fault = { kind: 'status', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}' };

/** TCP toxics taken in turn while the jobs run, each on a share of the connections opened meanwhile. */
const toxics: Toxic[] = [
  { type: 'reset_peer', attributes: { timeout: 500 } },
  { type: 'limit_data', attributes: { bytes: 100_000 } },
  { type: 'timeout', attributes: { timeout: 1500 } },
  { type: 'latency', attributes: { latency: 300, jitter: 100 } },
  { type: 'slicer', attributes: { average_size: 700, size_variation: 300, delay: 20 } },
  { type: 'limit_data', attributes: { bytes: 3_000_000 } },
];

/** Puts the toxics on the TCP proxy in turn (1 s each, on a fifth of the connections, then 2 s without) until stopped; returns what it applied. */
function rotateToxics(): { stop: () => Promise<string[]> } {
  const applied: string[] = [];
  let running = true;
  let wake: (() => void) | undefined;
  const pause = (ms: number) => new Promise<void>((r) => { const t = setTimeout(r, ms); wake = () => { clearTimeout(t); r(); }; });
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const toxic = toxics[i % toxics.length]!;
      const name = `t${i}`;
      await tcp.addToxic({ ...toxic, name, stream: roll('stream', i) < 0.8 ? 'downstream' : 'upstream', toxicity: 0.2 });
      applied.push(`${toxic.type} ${JSON.stringify(toxic.attributes)}`);
      await pause(1000);
      await tcp.removeToxic(name);
      if (running) await pause(2000);
    }
  })();
  // A failing API call ends the loop; stop() reports it.
  loop.catch(() => undefined);
  return { async stop() { running = false; wake?.(); await loop; return applied; } };
}

for (const backend of backends) {
  test(`${backend}: serve patches ${cleanCount} pushes through ~10% faulted registry requests and TCP toxics: every job completes, everything in the registry verifies`, { timeout: 6 * 60_000 }, async () => {
    const repositories = Array.from({ length: cleanCount }, (_, i) => clean(backend, i));
    const serve = await startServe(backend, `${backend}-clean`, '{ concurrency: 2, maxAttempts: 5, retryBaseMs: 500 }');
    const seenKeys = new Map<string, number>();
    const isGet = (what: string) => (req: ProxiedRequest) => req.method === 'GET' && req.path.includes(what);
    const forced: { fits: (req: ProxiedRequest) => boolean; fault: Fault }[] = [
      { fits: isGet('/manifests/'), fault: unavailable },
      { fits: isGet('/manifests/'), fault: throttled },
      { fits: isGet('/blobs/sha256:'), fault: { kind: 'cut', afterBytes: 100 } },
      { fits: (req) => req.method === 'HEAD', fault: { kind: 'stall', ms: 1000 } },
      { fits: (req) => req.method === 'PUT' && req.path.includes('digest='), fault: { kind: 'lose-response' } },
    ];
    faults.setPlan((req) => {
      const key = keyOf(req);
      const occurrence = (seenKeys.get(key) ?? 0) + 1;
      seenKeys.set(key, occurrence);
      // Every kind happens at least once: each at the first request it fits.
      if (occurrence === 1) {
        const i = forced.findIndex((f) => f.fits(req));
        if (i >= 0) return forced.splice(i, 1)[0]!.fault;
      }
      // A request's third and later attempts go through: the transport's retries always suffice.
      if (occurrence > 2 || roll(key, occurrence) >= 0.1) return undefined;
      const pick = roll(key, occurrence, 'kind');
      if (req.method === 'GET' && pick < 0.3) return { kind: 'cut', afterBytes: 16 + Math.floor(roll(key, occurrence, 'at') * 200_000) };
      if (pick < 0.45) return { kind: 'lose-response' };
      if (pick < 0.65) return unavailable;
      if (pick < 0.8) return throttled;
      return { kind: 'stall', ms: 300 + Math.floor(roll(key, occurrence, 'ms') * 1200) };
    });
    const logStart = faults.log.length;
    const rotation = rotateToxics();
    const started = Date.now();
    await deliver(serve.url, repositories);
    const seen: Job[] = [];
    let jobs: Job[];
    try {
      jobs = await settle(serve.url, cleanCount, 4 * 60_000, seen);
    } finally {
      const applied = await rotation.stop();
      console.log(`toxics applied in turn: ${applied.length} (${[...new Set(applied)].join('; ')})`);
    }
    console.log(`${cleanCount} jobs settled in ${Date.now() - started} ms`);
    faults.setPlan(() => undefined);

    const requests = faults.log.slice(logStart);
    const faulted = requests.filter((r) => r.fault);
    const kinds = new Map<string, number>();
    for (const r of faulted) kinds.set(r.fault!, (kinds.get(r.fault!) ?? 0) + 1);
    const retries = serve.logs().split('\n').filter((l) => l.includes('retrying registry operation'));
    const retryCodes = new Map<string, number>();
    for (const line of retries) { const code = /"code":"([A-Z_]+)"/.exec(line)?.[1] ?? '?'; retryCodes.set(code, (retryCodes.get(code) ?? 0) + 1); }
    console.log(`${faulted.length} of ${requests.length} registry requests faulted at the HTTP proxy (${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')}); patchd retried ${retries.length} registry operations (${[...retryCodes].map(([k, n]) => `${k}: ${n}`).join(', ')})`);
    assert.ok(faulted.length / requests.length >= 0.04 && faulted.length / requests.length <= 0.2, `${faulted.length} of ${requests.length} requests faulted at the HTTP proxy`);
    assert.equal(kinds.size, 4, `every kind of HTTP fault happened (status, stall, cut, lose-response): ${[...kinds.keys()].join(', ')}`);
    assert.ok((retryCodes.get('NETWORK') ?? 0) >= 1, `the TCP toxics or cut bodies made patchd retry after a connection failure: ${[...retryCodes].join(' ')}`);

    // Every job completed, and patched its image.
    assert.equal(jobs.length, cleanCount, `one job per push: ${JSON.stringify(jobs.map((j) => [j.repository, j.status]))}`);
    for (const job of jobs) assert.equal(job.status, 'succeeded', `${job.repository}: ${job.status} after ${job.attempts} attempts: ${job.lastError}`);

    // Straight from the registry: every tag, manifest and blob; each patched image copied out and re-hashed.
    const audit = await auditRegistry(registry.url);
    assert.deepEqual(audit.problems, [], 'every manifest and blob in the registry verifies');
    for (const job of jobs) {
      assert.ok(audit.tags.get(job.repository)?.includes('main-patched'), `${job.repository} has main-patched: ${audit.tags.get(job.repository)}`);
      const patched = audit.manifests.find((m) => m.repository === job.repository && m.reference === 'main-patched');
      assert.equal(patched?.digest, job.result?.digest, `${job.repository}:main-patched is the manifest the job reports`);
      const blobs = await skopeoCopyAndRehash(registry.host, `${job.repository}:main-patched`, join(work.path, `copy-${backend}`), job.repository.replace(/\//g, '-'));
      assert.ok(blobs >= 4, `${job.repository}: manifest, config and layers copied and re-hashed (${blobs})`);
    }
    console.log(`audit: ${audit.manifests.length} manifests, ${audit.blobs} blobs re-hashed in ${audit.tags.size} repositories`);
    await serve.stop();
  });

  test(`${backend}: with corrupted registry answers, serve's ${corruptCount} jobs fail or retry naming the digest, and nothing invalid is pushed`, { timeout: 5 * 60_000 }, async () => {
    const repositories = Array.from({ length: corruptCount }, (_, i) => corrupt(backend, i));
    const serve = await startServe(backend, `${backend}-corrupt`, '{ concurrency: 2, maxAttempts: 3, retryBaseMs: 300 }');
    const [alwaysConfig, alwaysLayer, alwaysManifest, twice] = [0, 1, 2, 3].map((i) => images.get(corrupt(backend, i))!) as [ImageDigests, ImageDigests, ImageDigests, ImageDigests];
    const corrupted = new Map<string, number>();
    const seenKeys = new Map<string, number>();
    faults.setPlan((req) => {
      if (req.method !== 'GET') return undefined;
      const path = req.path.split('?')[0]!;
      const key = keyOf(req);
      const occurrence = (seenKeys.get(key) ?? 0) + 1;
      seenKeys.set(key, occurrence);
      const digest = /\/(?:blobs|manifests)\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
      const hit = (atByte: number): Fault => { if (digest) corrupted.set(digest, (corrupted.get(digest) ?? 0) + 1); return { kind: 'corrupt', atByte }; };
      // Always: these three can never be read intact, so their jobs must die.
      if (path === `/v2/${corrupt(backend, 0)}/blobs/${alwaysConfig.config}`) return hit(10);
      if (path === `/v2/${corrupt(backend, 1)}/blobs/${alwaysLayer.ownLayer}`) return hit(20);
      if (path === `/v2/${corrupt(backend, 2)}/manifests/${alwaysManifest.digest}`) return hit(30);
      // The first two reads only: the transport's retries (or the job's) get past them.
      if (path === `/v2/${corrupt(backend, 3)}/blobs/${twice.ownLayer}` && occurrence <= 2) return hit(5);
      // And about one in ten other reads of anything addressed by digest, first attempts only; not the image corrupted
      // twice, whose three attempts those two use up (one more corrupted read could end it dead by chance).
      const twiceImage = path.startsWith(`/v2/${corrupt(backend, 3)}/`);
      if (digest && !twiceImage && occurrence === 1 && roll('corrupt', key) < 0.1) return hit(Math.floor(roll('at', key) * 200));
      return undefined;
    });
    const rotation = rotateToxics();
    await deliver(serve.url, repositories);
    const seen: Job[] = [];
    let jobs: Job[];
    try {
      jobs = await settle(serve.url, corruptCount, 4 * 60_000, seen);
    } finally {
      await rotation.stop();
      faults.setPlan(() => undefined);
    }
    console.log(`corrupted reads: ${[...corrupted].map(([d, n]) => `${d.slice(0, 19)}… ×${n}`).join(', ')}`);
    const byRepo = new Map(jobs.map((j) => [j.repository, j]));

    // The three that can never be read intact died, naming what did not verify.
    for (const [repository, digest, code] of [
      [corrupt(backend, 0), alwaysConfig.config, 'BLOB_DIGEST_MISMATCH'],
      [corrupt(backend, 1), alwaysLayer.ownLayer, 'BLOB_DIGEST_MISMATCH'],
      [corrupt(backend, 2), alwaysManifest.digest, 'MANIFEST_DIGEST_MISMATCH'],
    ] as const) {
      const job = byRepo.get(repository);
      assert.equal(job?.status, 'dead', `${repository}: ${job?.status} (${job?.lastError})`);
      assert.equal(job.attempts, 3, `${repository}: retried up to maxAttempts`);
      assert.ok(job.lastError?.startsWith(code), `${repository}: error code ${code}: ${job.lastError}`);
      assert.ok(job.lastError?.includes(digest), `${repository}: the error names ${digest}: ${job.lastError}`);
    }
    // The one corrupted twice got past it.
    assert.equal(byRepo.get(corrupt(backend, 3))?.status, 'succeeded', `${corrupt(backend, 3)}: ${JSON.stringify(byRepo.get(corrupt(backend, 3)))}`);

    // Every error any job showed on its way names a digest that was served corrupted.
    const errors = new Set(seen.map((j) => j.lastError).filter((e): e is string => !!e));
    for (const error of errors) {
      const named = [...error.matchAll(/sha256:[0-9a-f]{64}/g)].map((m) => m[0]);
      assert.ok(named.some((d) => corrupted.has(d)) || /NETWORK|UNAVAILABLE|TOOMANY|timed out|socket|reset/i.test(error),
        `a job error names a digest served corrupted (or a connection failure): ${error}`);
    }
    // No job that died ever reported success, and none reported success before failing again.
    for (const job of jobs) {
      const history = seen.filter((s) => s.id === job.id).map((s) => s.status);
      const firstFinal = history.findIndex((s) => s === 'succeeded' || s === 'dead');
      assert.ok(firstFinal === -1 || history.slice(firstFinal).every((s) => s === history[firstFinal]), `${job.repository}: once finished, always finished the same way: ${history.join(' → ')}`);
    }

    // Nothing invalid in the registry, and no patched tag for a job that died.
    const audit = await auditRegistry(registry.url);
    assert.deepEqual(audit.problems, [], 'every manifest and blob in the registry verifies');
    for (const job of jobs) {
      const repoTags = audit.tags.get(job.repository) ?? [];
      if (job.status === 'dead') assert.deepEqual(repoTags.filter((t) => t.startsWith('main-')), [], `${job.repository} died: no patched tag (${repoTags})`);
      else {
        assert.ok(repoTags.includes('main-patched'), `${job.repository} succeeded: main-patched exists (${repoTags})`);
        await skopeoCopyAndRehash(registry.host, `${job.repository}:main-patched`, join(work.path, `copy-${backend}`), job.repository.replace(/\//g, '-'));
      }
    }
    await serve.stop();
  });
}

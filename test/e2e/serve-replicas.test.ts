import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { pushLibraryImage, startLibraryFixture, type LibraryFixture } from '../harness/npm-library-image.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { tmpDir, type TempDir } from '../harness/tools.js';

// Three `patchd serve` replicas on one Redis queue and one real registry
// (Debian's docker-registry). Each replica reaches the registry through its
// own loopback proxy (test/harness/fault-proxy.ts, no faults unless a test
// sets some), so every request patchd makes is seen and counted: a digest is
// patched once exactly when its `<tag>-patched` manifest is PUT once. The
// images are the smallest patchd really patches (one vulnerable global npm
// package, fixed from a loopback npm registry), so hundreds stay fast.

const replicaCount = 3;
const distinct = 200;
/** Redis job locks lapse this fast here, so a killed replica's job is taken over within seconds. */
const lockSeconds = 3;

let work: TempDir;
let registry: RunningRegistry;
let library: LibraryFixture;
let redis: RunningRedis;
const proxies: FaultProxy[] = [];
const replicas: (RunningPatchd | undefined)[] = [];

before(async () => {
  work = await tmpDir('patchd-replicas');
  [registry, redis, library] = await Promise.all([startRegistry(), startRedis(), startLibraryFixture(work.path)]);
  for (let i = 0; i < replicaCount; i++) proxies.push(await startFaultProxy({ target: registry.url }));
  for (let i = 0; i < replicaCount; i++) replicas.push(await startReplica(i));
});

after(async () => {
  for (const r of replicas) await r?.stop();
  for (const p of proxies) await p.stop();
  await library?.close();
  await redis?.stop();
  await registry?.stop();
  await work?.remove();
});

function startReplica(i: number): Promise<RunningPatchd> {
  return startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, `data-${i}`))}`,
      `queue: { redis: { url: ${JSON.stringify(redis.url)}, lockSeconds: ${lockSeconds} } }`,
      'worker: { concurrency: 2, maxAttempts: 5, retryBaseMs: 500 }',
      `advisories: { osv: [${JSON.stringify(library.osvDir)}] }`,
      `libraryIndex: { npm: ${JSON.stringify(library.npmUrl)} }`,
      'continuous: { watchAdvisories: false }',
      'registries:',
      '  local:',
      `    url: ${JSON.stringify(proxies[i]!.url)}`,
      `    hosts: [${JSON.stringify(registry.host)}]`,
      '    webhookSecret: s3cret',
      '    policy: { pkgTypes: [library], evidence: false }',
    ],
  });
}

const live = () => replicas.filter((r): r is RunningPatchd => r !== undefined && r.child.exitCode === null && r.child.signalCode === null);

function delivery(eventId: string, repository: string, tag: string, digest: string): string {
  return JSON.stringify({ events: [{
    id: eventId, action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository, digest, tag },
    request: { host: registry.host, method: 'PUT' },
  }] });
}

async function deliver(replica: RunningPatchd, body: string): Promise<{ id: string; duplicate: boolean }> {
  const res = await fetch(`${replica.url}/webhooks/distribution`, {
    method: 'POST', body, headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
  });
  const text = await res.text();
  assert.equal(res.status, 202, `${replica.url} answered ${res.status}: ${text}`);
  const job = (JSON.parse(text) as { jobs: { id: string; duplicate: boolean }[] }).jobs[0];
  assert.ok(job, `no job in ${text}`);
  return job;
}

interface Job { id: string; repository: string; tag?: string; digest?: string; status: string; attempts: number; lastError?: string; finishedAt?: string }

async function allJobs(replica: RunningPatchd): Promise<Job[]> {
  const res = await fetch(`${replica.url}/jobs?limit=1000`);
  assert.equal(res.status, 200, `/jobs on ${replica.url}: ${res.status}`);
  return ((await res.json()) as { jobs: Job[] }).jobs;
}

/** Waits until no job is queued or running (as any live replica sees the shared queue), up to `ms`. */
async function settled(ms: number): Promise<Job[]> {
  const deadline = Date.now() + ms;
  let jobs: Job[] = [];
  for (let i = 0; Date.now() < deadline; i++) {
    const [r] = live();
    assert.ok(r, 'no live replica');
    jobs = await allJobs(r);
    if (jobs.length > 0 && jobs.every((j) => j.status !== 'queued' && j.status !== 'running')) return jobs;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return jobs;
}

/** Every manifest PUT patchd made, through every replica's proxy: `repository:reference` → [replica index, …]. */
function manifestPuts(): Map<string, number[]> {
  const puts = new Map<string, number[]>();
  proxies.forEach((proxy, i) => {
    for (const req of proxy.log) {
      const m = /^\/v2\/(.+)\/manifests\/([^/?]+)/.exec(req.path);
      if (req.method !== 'PUT' || !m) continue;
      const key = `${m[1]}:${decodeURIComponent(m[2]!)}`;
      puts.set(key, [...(puts.get(key) ?? []), i]);
    }
  });
  return puts;
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => { while (next < items.length) await fn(items[next++]!); }));
}

test(`${replicaCount} replicas on one Redis: ${distinct} pushes plus duplicates and redeliveries across them, every digest patched exactly once`, { timeout: 150_000 }, async () => {
  const started = Date.now();
  // One repository per image: every patch adds the same layer (the same fixed package), and docker-registry 2.8's
  // filesystem storage rewrites a repository's blob link in place, so a manifest PUT racing another push of that
  // blob into the same repository is refused (400 DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN): the registry's race.
  const images: { repository: string; tag: string; digest: string }[] = [];
  await pool(Array.from({ length: distinct }, (_, i) => i), 8, async (i) => {
    const repository = `replicas/app-${i}`;
    const { digest } = await pushLibraryImage({ registryUrl: registry.url, repository, tag: `t${i}`, content: `image ${i}` });
    images[i] = { repository, tag: `t${i}`, digest };
  });

  // Each push: its delivery to one replica, a duplicate event (another id, same digest) to the next, and for every
  // other push the first delivery again, byte for byte (a registry's redelivery), to the third. Interleaved.
  const sends: { replica: number; body: string; image: number }[] = [];
  images.forEach((image, i) => {
    sends.push({ replica: i % replicaCount, body: delivery(`push-${i}`, image.repository, image.tag, image.digest), image: i });
    sends.push({ replica: (i + 1) % replicaCount, body: delivery(`dup-${i}`, image.repository, image.tag, image.digest), image: i });
    if (i % 2 === 0) sends.push({ replica: (i + 2) % replicaCount, body: delivery(`push-${i}`, image.repository, image.tag, image.digest), image: i });
  });
  for (let i = sends.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [sends[i], sends[j]] = [sends[j]!, sends[i]!];
  }
  const jobOf = new Map<number, Set<string>>();
  let duplicates = 0;
  await pool(sends, 24, async (send) => {
    const job = await deliver(replicas[send.replica]!, send.body);
    jobOf.set(send.image, (jobOf.get(send.image) ?? new Set()).add(job.id));
    if (job.duplicate) duplicates++;
  });
  assert.equal(sends.length, distinct * 2 + distinct / 2, 'deliveries sent');
  for (const [image, ids] of jobOf) assert.equal(ids.size, 1, `image ${image}: its deliveries map to ${ids.size} jobs on different replicas`);
  assert.equal(jobOf.size, distinct, 'every push has its job');
  assert.equal(duplicates, sends.length - distinct, 'every delivery after an image\'s first is answered as a duplicate of its job');
  const acked = Date.now();

  const jobs = await settled(120_000);
  const mine = jobs.filter((j) => j.repository.startsWith('replicas/app-'));
  assert.equal(mine.length, distinct, `one job per digest: ${mine.length}`);
  assert.deepEqual(mine.filter((j) => j.status !== 'succeeded').map((j) => `${j.tag} ${j.status} ${j.lastError ?? ''}`), [], 'every job succeeded');
  assert.deepEqual(jobs.filter((j) => j.status === 'queued' || j.status === 'running'), [], 'no job left queued or running');

  const puts = manifestPuts();
  const perReplica = Array.from({ length: replicaCount }, () => 0);
  for (const image of images) {
    const by = puts.get(`${image.repository}:${image.tag}-patched`) ?? [];
    assert.equal(by.length, 1, `${image.tag} (${image.digest}): ${by.length} PUTs of ${image.tag}-patched, by replicas ${by.join(', ')}`);
    perReplica[by[0]!]!++;
  }
  const tagPuts = [...puts.keys()].filter((k) => !k.includes(':sha256:'));
  assert.equal(tagPuts.length, distinct, `manifest PUTs by tag: only the ${distinct} patched tags, once each (${tagPuts.length})`);
  for (const [i, n] of perReplica.entries()) assert.ok(n > 0, `replica ${i} patched nothing: the work was not shared (${perReplica.join('/')})`);

  for (const r of live()) {
    const ready = await fetch(`${r.url}/readyz`);
    assert.equal(ready.status, 200, `${r.url}/readyz: ${ready.status}`);
    await ready.body?.cancel();
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    assert.match(metrics, /patchd_jobs\{status="running"\} 0\b/, `${r.url}/metrics: no job running`);
    assert.match(metrics, /patchd_jobs\{status="queued"\} 0\b/, `${r.url}/metrics: no job queued`);
  }
  console.log(`# ${distinct} images, ${sends.length} deliveries acked in ${acked - started} ms, all patched after ${Date.now() - started} ms; per replica ${perReplica.join('/')}`);
});

test('kill -9 of the replica running a job: another replica finishes it after the lock lapses, and nothing is patched twice', { timeout: 90_000 }, async () => {
  const repository = 'replicas/slow';
  const { digest } = await pushLibraryImage({ registryUrl: registry.url, repository, tag: 'v1', content: 'slow image' });
  // Whichever replica claims the job stalls fetching its blobs: the job is caught mid-run.
  const isSlowBlob = (path: string) => path.startsWith(`/v2/${repository}/blobs/`);
  for (const proxy of proxies) proxy.setPlan((req) => (req.method === 'GET' && isSlowBlob(req.path) ? { kind: 'stall', ms: 60_000 } : undefined));
  const job = await deliver(replicas[0]!, delivery('slow-1', repository, 'v1', digest));

  let victim = -1;
  for (let i = 0; i < 200 && victim < 0; i++) {
    victim = proxies.findIndex((p) => p.log.some((r) => r.fault === 'stall' && isSlowBlob(r.path)));
    if (victim < 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(victim >= 0, 'no replica started the job');
  const running = await (await fetch(`${replicas[victim]!.url}/jobs/${job.id}`)).json() as Job;
  assert.equal(running.status, 'running', `the job is running on replica ${victim}`);
  await new Promise((resolve) => setTimeout(resolve, lockSeconds * 1000));
  const runners = proxies.flatMap((p, i) => (p.log.some((r) => r.fault === 'stall' && isSlowBlob(r.path)) ? [i] : []));
  assert.deepEqual(runners, [victim], 'while its lock is renewed, no other replica runs the job');

  const killed = replicas[victim]!;
  killed.child.kill('SIGKILL');
  await killed.exited;
  replicas[victim] = undefined;
  const killedAt = Date.now();
  for (const proxy of proxies) proxy.setPlan(() => undefined);

  let finished: Job | undefined;
  for (let i = 0; i < 240; i++) {
    const [r] = live();
    finished = await (await fetch(`${r!.url}/jobs/${job.id}`)).json() as Job;
    if (finished.status !== 'queued' && finished.status !== 'running') break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.equal(finished?.status, 'succeeded', `the job finished on another replica: ${JSON.stringify(finished)}`);
  // The lock was last renewed at most a third of lockSeconds before the kill: no takeover before it lapsed.
  assert.ok(Date.parse(finished!.finishedAt!) - killedAt >= (lockSeconds * 1000 * 2) / 3 - 250, `taken over ${Date.parse(finished!.finishedAt!) - killedAt} ms after the kill, before the lock lapsed`);
  assert.ok((finished?.attempts ?? 0) >= 2, `the takeover is a second attempt: ${finished?.attempts}`);
  const by = manifestPuts().get(`${repository}:v1-patched`) ?? [];
  assert.equal(by.length, 1, `v1-patched PUT ${by.length} times`);
  assert.notEqual(by[0], victim, 'the killed replica never pushed');
  const [r] = live();
  assert.deepEqual((await allJobs(r!)).filter((j) => j.status === 'queued' || j.status === 'running'), [], 'no job left queued or running');
  console.log(`# replica ${victim} killed mid-job; replica ${by[0]} finished it ${Date.now() - killedAt} ms later (lock ${lockSeconds} s)`);
});

test('a replica that stalls past its lock (SIGSTOP) loses the job: another finishes it, and the stalled one, resumed, records and pushes nothing', { timeout: 90_000 }, async () => {
  for (let i = 0; i < replicaCount; i++) if (!replicas[i]) replicas[i] = await startReplica(i); // the previous test's victim
  const repository = 'replicas/stalled';
  const { digest } = await pushLibraryImage({ registryUrl: registry.url, repository, tag: 'v1', content: 'stalled image' });
  // The replica that claims the job waits on its blobs long enough to be stopped there; resumed, it gets them and goes on.
  const isSlowBlob = (path: string) => path.startsWith(`/v2/${repository}/blobs/`);
  const stallMs = (lockSeconds + 5) * 1000;
  for (const proxy of proxies) proxy.setPlan((req) => (req.method === 'GET' && isSlowBlob(req.path) ? { kind: 'stall', ms: stallMs } : undefined));
  const job = await deliver(replicas[0]!, delivery('stalled-1', repository, 'v1', digest));
  let victim = -1;
  for (let i = 0; i < 200 && victim < 0; i++) {
    victim = proxies.findIndex((p) => p.log.some((r) => r.fault === 'stall' && isSlowBlob(r.path)));
    if (victim < 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(victim >= 0, 'no replica started the job');
  const stalled = replicas[victim]!;
  stalled.child.kill('SIGSTOP'); // as a blocked event loop: no heartbeat, so its locks lapse
  const stoppedAt = Date.now();
  for (const proxy of proxies) proxy.setPlan(() => undefined);
  try {
    let finished: Job | undefined;
    for (let i = 0; i < 240; i++) {
      const other = replicas.find((r, j) => j !== victim && r);
      finished = await (await fetch(`${other!.url}/jobs/${job.id}`)).json() as Job;
      if (finished.status !== 'queued' && finished.status !== 'running') break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(finished?.status, 'succeeded', `another replica finished the job while replica ${victim} was stopped: ${JSON.stringify(finished)}`);
  } finally {
    stalled.child.kill('SIGCONT');
  }
  // Resumed, the stalled replica gets its blobs once its stall ends, patches, and finds the job is no longer its own.
  let lost = false;
  for (let i = 0; i < 120 && !lost; i++) {
    lost = /patchd_patch_outcomes_total\{outcome="claim-lost"\} 1/.test(await (await fetch(`${stalled.url}/metrics`)).text());
    if (!lost) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.ok(lost, `replica ${victim} counted its lost claim (${Date.now() - stoppedAt} ms after it was stopped)`);
  const by = manifestPuts().get(`${repository}:v1-patched`) ?? [];
  assert.equal(by.length, 1, `v1-patched PUT ${by.length} times`);
  assert.notEqual(by[0], victim, 'the stalled replica never pushed it');
  const after = await (await fetch(`${stalled.url}/jobs/${job.id}`)).json() as Job;
  assert.equal(after.status, 'succeeded', `the job's outcome is the finishing replica's, not overwritten: ${JSON.stringify(after)}`);
  assert.equal((await fetch(`${stalled.url}/healthz`)).status, 200, 'the resumed replica still serves');
});

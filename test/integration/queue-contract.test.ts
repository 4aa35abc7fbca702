import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createApp } from '../../src/app/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/lib/log.js';
import { Metrics } from '../../src/lib/metrics.js';
import { Redis } from 'ioredis';
import { openRedisQueue } from '../../src/queue/redis.js';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import type { Job, JobQueue } from '../../src/queue/types.js';
import { startRedis, type RunningRedis } from '../harness/redis.js';
import { freePort, tmpDir } from '../harness/tools.js';

// One contract, both JobQueue backends: SQLite (one file; two handles on it are two processes) and Redis
// through BullMQ (a real redis-server; two queue instances on one Redis are two replicas).

const lockMs = 1000;
const work = await tmpDir('patchd-queue-contract');
let redis: RunningRedis;
const opened: JobQueue[] = [];
before(async () => { redis = await startRedis({ password: 'contract-secret' }); });
after(async () => {
  for (const q of opened) await q.close().catch(() => undefined);
  await redis?.stop();
  await work.remove();
});

interface Backend {
  readonly name: 'sqlite' | 'redis';
  /** A queue on store `store`; calling it twice with one store gives two replicas of one queue. */
  open(store: string): Promise<JobQueue>;
}
let stores = 0;
const backends: Backend[] = [
  { name: 'sqlite', open: async (store) => track(openSqliteQueue(join(work.path, `${store}.sqlite`))) },
  { name: 'redis', open: async (store) => track(await openRedisQueue({ url: redis.url, prefix: store, lockMs, maxAttempts: 3 })) },
];
const track = (q: JobQueue) => { opened.push(q); return q; };
const fresh = () => `store${++stores}`;

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const request = (n: number, extra: Record<string, string> = {}) => ({ registry: 'local', repository: 'app', digest: digest(n), tag: 'v1', source: 'distribution', trigger: 'push', ...extra });
const patched = (n: number, reasons: string[]) => ({ status: 'patched', target: 'h/app:v1-patched', digest: digest(n), platforms: [{ manifestDigest: digest(n + 5000), packages: [{ name: 'libexpat1', to: '2', reasons }] }] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Claims until one comes back or `ms` pass. */
async function claimWithin(q: JobQueue, ms: number): Promise<Job | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const job = await q.claim();
    if (job || Date.now() > deadline) return job;
    await sleep(100);
  }
}

for (const backend of backends) {
  test(`${backend.name}: enqueue dedupes per (registry, repository, digest), per tag without one, per revision; across replicas`, async () => {
    const store = fresh();
    const [a, b] = [await backend.open(store), await backend.open(store)];
    const first = await a.enqueue(request(1));
    assert.equal(first.created, true, 'a new image: a new job');
    assert.deepEqual(await b.enqueue({ ...request(1), source: 'harbor' }), { id: first.id, created: false }, 'the same digest through another replica: the same job');
    const many = await a.enqueueMany([request(2), request(2), request(1), { registry: 'local', repository: 'app', tag: 'v9', source: 'acr', trigger: 'push' }]);
    assert.deepEqual(many.map((r) => r.created), [true, false, false, true], 'one batch: duplicates inside it and of earlier jobs are found');
    assert.equal(many[0]!.id, many[1]!.id, 'the duplicate in one batch is the same job');
    assert.deepEqual(await b.enqueue({ registry: 'local', repository: 'app', tag: 'v9', source: 'acr', trigger: 'push' }), { id: many[3]!.id, created: false }, 'a tag-only push dedupes per tag');
    assert.equal((await a.enqueue({ ...request(1), repository: 'other' })).created, true, 'another repository: another job');
    assert.equal((await b.counts()).queued, 4, 'four distinct jobs queued');
    const job = await b.get(first.id);
    assert.deepEqual([job?.status, job?.attempts, job?.digest, job?.tag, job?.source], ['queued', 0, digest(1), 'v1', 'distribution'], `the record as the first delivery made it: ${JSON.stringify(job)}`);
  });

  test(`${backend.name}: a redelivered push while its job runs or after it finished is the same job, never delivered twice`, async () => {
    const store = fresh();
    const [a, b] = [await backend.open(store), await backend.open(store)];
    const { id } = await a.enqueue(request(1));
    assert.equal((await a.claim())?.id, id, 'claimed by replica a');
    assert.deepEqual(await b.enqueue(request(1)), { id, created: false }, 'redelivered while running');
    assert.equal(await b.claim(), undefined, 'replica b gets nothing: the one job is running on a');
    await a.succeed(id, 'succeeded', patched(101, ['CVE-1']));
    assert.deepEqual(await b.enqueue(request(1)), { id, created: false }, 'redelivered after it finished');
    assert.equal(await b.claim(), undefined, 'nothing to run again');
    assert.equal(await a.claim(), undefined, 'on either replica');
    const done = await b.get(id);
    assert.deepEqual([done?.status, done?.attempts], ['succeeded', 1], 'patched once');
    assert.deepEqual((await b.list({ status: 'succeeded' })).map((j) => j.id), [id], '/jobs?status=succeeded lists it');
  });

  test(`${backend.name}: a failure retries after its backoff, then ends dead with the last error`, async () => {
    const q = await backend.open(fresh());
    const { id } = await q.enqueue(request(1));
    const ok = (await q.enqueue(request(2))).id;
    assert.equal((await q.claim())?.id, id, 'first attempt');
    await q.fail(id, 'NETWORK: registry reset the connection', new Date(Date.now() + 600));
    const retrying = await q.get(id);
    assert.deepEqual([retrying?.status, retrying?.lastError], ['queued', 'NETWORK: registry reset the connection'], 'queued again with its error');
    assert.equal((await q.claim())?.id, ok, 'the other job runs while this one backs off');
    assert.equal(await q.claim(), undefined, 'not before its time');
    const again = await claimWithin(q, 3000);
    assert.deepEqual([again?.id, again?.attempts], [id, 2], 'second attempt after the backoff');
    await q.fail(id, 'NETWORK: registry answered 503', undefined);
    const dead = await q.get(id);
    assert.deepEqual([dead?.status, dead?.lastError, dead?.attempts], ['dead', 'NETWORK: registry answered 503', 2], 'dead with the last error');
    assert.ok(dead?.finishedAt, 'finished');
    assert.equal(await claimWithin(q, 1000), undefined, 'a dead job is never claimed again');
    await q.succeed(ok, 'skipped', { reason: 'up to date' });
    assert.deepEqual(await q.counts(), { queued: 0, running: 0, succeeded: 0, skipped: 1, dead: 1 }, 'counts');
    assert.deepEqual((await q.list({ status: 'dead' })).map((j) => j.id), [id], 'listed as dead');
  });

  test(`${backend.name}: claim(now) with a later now runs the retries due by then, not the ones due after`, async () => {
    const q = await backend.open(fresh());
    const soon = (await q.enqueue(request(1))).id;
    const late = (await q.enqueue(request(2))).id;
    await q.claim();
    await q.claim();
    await q.fail(soon, 'NETWORK: reset', new Date(Date.now() + 60_000));
    await q.fail(late, 'NETWORK: reset', new Date(Date.now() + 3_600_000));
    assert.equal(await q.claim(), undefined, 'neither is due now');
    assert.equal((await q.claim(new Date(Date.now() + 120_000)))?.id, soon, 'due within two minutes');
    assert.equal(await q.claim(new Date(Date.now() + 120_000)), undefined, 'the hour-long backoff still waits');
  });

  test(`${backend.name}: two replicas claiming at once never get the same job`, async () => {
    const store = fresh();
    const replicas = [await backend.open(store), await backend.open(store)];
    const ids = (await replicas[0]!.enqueueMany(Array.from({ length: 40 }, (_, n) => request(n + 1)))).map((r) => r.id);
    const got: string[][] = [[], []];
    await Promise.all(replicas.map(async (q, r) => {
      // Several claim loops per replica, as worker.concurrency runs them.
      await Promise.all([0, 1, 2].map(async () => {
        for (let job = await q.claim(); job; job = await q.claim()) {
          got[r]!.push(job.id);
          await q.succeed(job.id, 'skipped', { reason: 'test' });
        }
      }));
    }));
    const all = [...got[0]!, ...got[1]!];
    assert.equal(all.length, 40, `every job claimed once (${got[0]!.length} + ${got[1]!.length})`);
    assert.deepEqual([...new Set(all)].sort(), [...ids].sort(), 'each job exactly once');
    assert.equal((await replicas[1]!.counts()).skipped, 40, 'all finished');
  });

  test(`${backend.name}: one job per digest runs at a time (a re-evaluation waits for the running job of its digest)`, async () => {
    const store = fresh();
    const [a, b] = [await backend.open(store), await backend.open(store)];
    const { id } = await a.enqueue(request(1));
    await a.claim();
    await a.succeed(id, 'succeeded', patched(101, ['CVE-1']));
    const r1 = (await a.reevaluate({ ...request(1), trigger: 'schedule', revision: 's1' }))!.id;
    const r2 = (await a.reevaluate({ ...request(1), trigger: 'schedule', revision: 's2' }))!.id;
    assert.notEqual(r1, r2, 'two revisions: two jobs');
    const running = await a.claim();
    assert.ok(running && [r1, r2].includes(running.id), 'one re-evaluation runs');
    assert.equal(await claimWithin(b, 1500), undefined, 'the other waits while its digest is being patched');
    await a.succeed(running.id, 'skipped', { status: 'up-to-date', platforms: [] });
    const next = await claimWithin(b, 3000);
    assert.equal(next?.id, running.id === r1 ? r2 : r1, 'and runs once the digest is free');
  });

  test(`${backend.name}: a job whose replica stopped mid-job is taken over; a live replica's job is not`, async () => {
    const store = fresh();
    const [a, b] = [await backend.open(store), await backend.open(store)];
    const { id } = await a.enqueue(request(1));
    assert.equal((await a.claim())?.id, id, 'replica a runs it');
    // A replica restarting beside a live one recovers nothing that one is running.
    const restarted = await backend.open(store);
    if (backend.name === 'redis') {
      assert.equal(await restarted.recoverInterrupted(), 0, 'nothing to recover: a is alive and heartbeating');
      assert.equal(await claimWithin(b, lockMs * 2.5), undefined, `a's heartbeat keeps it past its ${lockMs} ms lock`);
    }
    await a.close(); // as if killed: no completion, no more heartbeats
    if (backend.name === 'sqlite') assert.equal(await restarted.recoverInterrupted(), 1, 'SQLite (one process): the restart requeues it');
    const taken = await claimWithin(b, lockMs * 6);
    assert.deepEqual([taken?.id, taken?.attempts], [id, 2], 'replica b takes it over: a second attempt');
    await b.succeed(id, 'succeeded', patched(101, []));
    assert.equal(await claimWithin(restarted, 1000), undefined, 'and nobody runs it a third time');
    assert.equal((await b.get(id))?.status, 'succeeded', 'finished once');
  });

  test(`${backend.name}: a claim is held until it is settled; one that lapsed is not, and letting it go leaves the new holder alone`, async () => {
    const store = fresh();
    const [a, b] = [await backend.open(store), await backend.open(store)];
    const { id } = await a.enqueue(request(7));
    assert.equal((await a.claim())?.id, id, 'replica a runs it');
    assert.equal(await a.holds(id), true, 'a holds its claim');
    assert.equal(await b.holds(id), false, 'b never claimed it');
    let holder = a;
    if (backend.name === 'redis') {
      // As if a stalled past its lock (a blocked event loop): both of its locks lapse, and b takes the job over.
      const raw = new Redis(redis.url, { lazyConnect: true });
      await raw.connect();
      try {
        const locks = [`${store}:bull:patch-jobs:${id}:lock`, ...(await raw.keys(`${store}:q:lock:*`))];
        assert.ok(locks.length >= 2, `the job's lock and its digest's lock are there: ${locks.join(', ')}`);
        await raw.del(...locks);
      } finally {
        raw.disconnect();
      }
      assert.equal((await claimWithin(b, lockMs * 6))?.id, id, 'b takes it over');
      assert.equal(await a.holds(id), false, 'a no longer holds it: it must publish nothing');
      assert.equal(await b.holds(id), true, 'b does');
      await a.abandon(id);
      assert.equal(await b.holds(id), true, "a letting go of its lost claim leaves b's alone");
      holder = b;
    }
    await holder.succeed(id, 'succeeded', patched(107, []));
    assert.equal(await holder.holds(id), false, 'a settled job is held by nobody');
    assert.equal((await a.get(id))?.status, 'succeeded', 'finished once, by its holder');
  });

  test(`${backend.name}: producerOf, newestByDigest/ByTag, lastPatch, attachDigest, patchedImages and settings`, async () => {
    const store = fresh();
    const [q, other] = [await backend.open(store), await backend.open(store)];
    const done = async (n: number, extra: Record<string, string>, status: 'succeeded' | 'skipped', result: unknown) => {
      const { id } = await q.enqueue(request(n, extra));
      assert.equal((await q.claim())?.id, id, `claimed ${n}`);
      await q.succeed(id, status, result);
      return id;
    };
    const v1 = await done(1, { tag: 'v1' }, 'succeeded', patched(101, ['CVE-1']));
    assert.equal((await other.producerOf(digest(101)))?.id, v1, 'the pushed image');
    assert.equal((await other.producerOf(digest(5101)))?.id, v1, 'a patched platform manifest');
    assert.equal(await other.producerOf(digest(1)), undefined, 'the original is not an output');
    const v1Again = (await q.reevaluate({ ...request(1), trigger: 'schedule', revision: 's1' }))!.id;
    assert.equal((await other.newestByDigest('local', 'app', digest(1)))?.id, v1Again, 'newest job for the digest: the re-evaluation');
    assert.equal((await other.lastPatch('local', 'app', digest(1)))?.id, v1, 'newest succeeded: the first patch');
    await q.claim();
    await q.succeed(v1Again, 'succeeded', patched(102, ['CVE-1', 'CVE-2']));
    assert.equal((await other.lastPatch('local', 'app', digest(1)))?.id, v1Again, 'now the re-evaluation');
    await done(2, { tag: 'v2' }, 'skipped', { status: 'up-to-date', platforms: [] });
    await done(3, { tag: 'v3' }, 'succeeded', patched(103, ['CVE-3']));
    await done(4, { tag: 'v3' }, 'skipped', { reason: 'duplicate' });
    await done(5, { tag: 'v5' }, 'succeeded', patched(105, ['CVE-5']));
    const v5 = await done(6, { tag: 'v5' }, 'skipped', { status: 'up-to-date', platforms: [] });
    assert.equal((await other.newestByTag('local', 'app', 'v5'))?.id, v5, 'newest job for the tag');
    assert.deepEqual((await other.patchedImages()).map((i) => [i.tag, i.digest, i.jobId === v1Again, i.patchedDigest, i.fixed]), [
      ['v1', digest(1), true, digest(102), ['CVE-1', 'CVE-2']],
      ['v3', digest(3), false, digest(103), ['CVE-3']],
    ], 'per tag: the original it names now, its newest patch and what it fixed');

    const tagOnly = (await q.enqueue({ registry: 'local', repository: 'app', tag: 'v7', source: 'acr', trigger: 'push' })).id;
    const sameDigest = (await q.enqueue({ registry: 'local', repository: 'app', tag: 'v8', source: 'acr', trigger: 'push' })).id;
    assert.equal(await other.attachDigest(tagOnly, digest(7)), true, 'a tag-only job learns its digest');
    assert.equal(await other.attachDigest(sameDigest, digest(7)), false, 'a second job for that digest is the duplicate');
    assert.deepEqual(await q.enqueue(request(7)), { id: tagOnly, created: false }, 'a later delivery with the digest finds the job');
    assert.equal((await other.newestByDigest('local', 'app', digest(7)))?.id, tagOnly, 'indexed by its digest');
    assert.equal(await q.attachDigest('no-such-job', digest(8)), false, 'an unknown job');

    assert.equal(await other.getSetting('continuous.osvRevision'), undefined, 'no setting yet');
    await q.putSetting('continuous.osvRevision', 'abc');
    await q.putSetting('continuous.osvRevision', 'def');
    assert.equal(await other.getSetting('continuous.osvRevision'), 'def', 'the last value, seen by every replica');
    assert.equal((await other.list({ limit: 2 })).length, 2, 'list honours its limit');
    assert.deepEqual((await other.listByImage('local', 'app', 'v5')).map((j) => j.id), [v5, (await other.newestByDigest('local', 'app', digest(5)))!.id], 'a tag\'s jobs, newest first');
    assert.equal((await other.listByImage('local', 'app')).length, 9, 'every job of the repository (six pushes, a re-evaluation, two tag-only pushes)');
    assert.equal((await other.listByImage('local', 'app', undefined, 3)).length, 3, 'within the limit');
    assert.deepEqual(await other.listByImage('local', 'nothing'), [], 'none for an unknown repository');
  });
}

test('redis: /readyz, /jobs and /metrics on Redis; unready (503) when Redis stops answering; the password is never shown', async () => {
  const own = await startRedis({ password: 'pa55-word' });
  try {
    const queue = track(await openRedisQueue({ url: own.url, prefix: 'app', lockMs, maxAttempts: 3 }));
    const config = loadConfig({}, 'registries:\n  local: { url: "http://127.0.0.1:5000", hosts: ["registry.internal:5000", "registrycluster.local"], webhookSecret: "dist-secret" }\n');
    const push = async () => app.request('/webhooks/distribution', {
      method: 'POST', body: await readFile(new URL('../../fixtures/webhooks/distribution.tag-push.json', import.meta.url)),
      headers: { authorization: 'Bearer dist-secret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
    });
    const app = createApp({ config, queue, logger: silentLogger(), metrics: new Metrics(), ready: () => true, registriesReachable: async () => ({ local: true }) });
    const { id } = await queue.enqueue(request(1));
    const accepted = await push();
    assert.equal(accepted.status, 202, `a push is accepted while Redis answers: ${await accepted.clone().text()}`);
    const again = (await (await push()).json()) as { jobs: { id: string; duplicate: boolean }[] };
    assert.deepEqual(again.jobs.map((j) => j.duplicate), [true], 'its redelivery is the same job');
    const ready = await app.request('/readyz');
    assert.equal(ready.status, 200, 'ready while Redis answers');
    assert.deepEqual(((await ready.json()) as { queue: unknown }).queue, { queued: 2, running: 0, succeeded: 0, skipped: 0, dead: 0 }, 'counts from Redis');
    assert.match(await (await app.request('/metrics')).text(), /patchd_jobs\{status="queued"\} 2/, 'queue gauges');
    assert.equal(((await (await app.request(`/jobs/${id}`)).json()) as Job).id, id, '/jobs/:id');
    await own.stop();
    const started = Date.now();
    const down = await app.request('/readyz');
    const body = await down.text();
    assert.equal(down.status, 503, `unready once Redis is gone: ${body}`);
    assert.match(body, /unready: queue unavailable/, 'says why');
    assert.ok(Date.now() - started < 6000, 'answers within the command timeout');
    const jobs = await app.request('/jobs');
    assert.equal(jobs.status, 503, '/jobs answers 503, not 500');
    const refused = await push();
    assert.equal(refused.status, 503, 'a push while Redis is away: 503, so the registry delivers it again');
    assert.doesNotMatch(body + await jobs.text(), /pa55-word/, 'no password in what patchd answers');
  } finally {
    await own.stop();
  }
  const port = await freePort();
  await assert.rejects(openRedisQueue({ url: `redis://:pa55-word@127.0.0.1:${port}`, prefix: 'x', lockMs, maxAttempts: 3 }),
    (error: Error) => /QUEUE_UNAVAILABLE|did not answer/.test(`${(error as { code?: string }).code} ${error.message}`) && !error.message.includes('pa55-word'),
    'no Redis at start-up: a clear error without the password');
});

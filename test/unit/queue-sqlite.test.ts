import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openSqliteQueue } from '../../src/queue/sqlite.js';
import { tmpDir } from '../harness/tools.js';

const work = await tmpDir('patchd-queue');
after(() => work.remove());
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const request = (n: number, extra: Record<string, string> = {}) => ({ registry: 'local', repository: 'app', digest: digest(n), tag: 'v1', source: 'distribution', trigger: 'push', ...extra });

test('enqueue is idempotent per (registry, repository, digest)', async () => {
  const q = openSqliteQueue(':memory:');
  const a = (await q.enqueue(request(1)));
  const b = (await q.enqueue({ ...request(1), source: 'harbor' }));
  assert.equal(a.created, true);
  assert.deepEqual(b, { id: a.id, created: false });
  assert.equal((await q.enqueue(request(2))).created, true);
  assert.equal((await q.enqueue({ ...request(1), repository: 'other' })).created, true);
  assert.equal((await q.counts()).queued, 3);
});

test('jobs survive closing and reopening; running ones are recovered after a crash', async () => {
  const path = join(work.path, 'q.sqlite');
  const q1 = openSqliteQueue(path);
  const a = (await q1.enqueue(request(1))).id;
  const b = (await q1.enqueue(request(2))).id;
  assert.equal((await q1.claim())?.id, a);
  await q1.close(); // as if killed while `a` was running
  const q2 = openSqliteQueue(path);
  assert.equal((await q2.get(a))?.status, 'running');
  assert.equal((await q2.recoverInterrupted()), 1);
  const claimed = [(await q2.claim())?.id, (await q2.claim())?.id].sort();
  assert.deepEqual(claimed, [a, b].sort());
  assert.equal((await q2.get(a))?.attempts, 2);
  await q2.close();
});

test('failures retry after their time, then die with the last error; success records the result', async () => {
  const q = openSqliteQueue(':memory:');
  const { id } = (await q.enqueue(request(1)));
  await q.claim();
  const later = new Date(Date.now() + 60_000);
  await q.fail(id, 'NETWORK: reset', later);
  assert.equal((await q.claim()), undefined, 'not before its retry time');
  assert.equal((await q.claim(new Date(later.getTime() + 1)))?.id, id);
  await q.fail(id, 'NETWORK: reset again', undefined);
  assert.deepEqual([(await q.get(id))?.status, (await q.get(id))?.lastError], ['dead', 'NETWORK: reset again']);
  const ok = (await q.enqueue(request(2))).id;
  await q.claim();
  await q.succeed(ok, 'succeeded', { target: 'x' });
  assert.deepEqual((await q.get(ok))?.result, { target: 'x' });
});

test('a tag-only job takes its digest, unless another job already has it', async () => {
  const q = openSqliteQueue(':memory:');
  const byDigest = (await q.enqueue(request(7))).id;
  const tagOnly = (await q.enqueue({ registry: 'local', repository: 'app', tag: 'v1', source: 'acr', trigger: 'push' })).id;
  assert.notEqual(tagOnly, byDigest);
  assert.equal((await q.attachDigest(tagOnly, digest(7))), false);
  const other = (await q.enqueue({ registry: 'local', repository: 'app', tag: 'v2', source: 'acr', trigger: 'push' })).id;
  assert.equal((await q.attachDigest(other, digest(8))), true);
  assert.equal((await q.enqueue(request(8))).id, other, 'later deliveries with the digest find it');
});

test('any job is found by what it pushed, its digest or its tag, past thousands of newer jobs', async () => {
  const q = openSqliteQueue(':memory:');
  const old = (await q.enqueue(request(1, { tag: 'old' }))).id;
  await q.claim();
  await q.succeed(old, 'succeeded', { status: 'patched', target: 'h/app:old-patched', digest: digest(1001), platforms: [{ manifestDigest: digest(2001) }, { manifestDigest: digest(2002) }, {}] });
  for (let n = 2; n < 3000; n++) (await q.enqueue(request(n, { tag: `t${n}` })));
  assert.equal((await q.producerOf(digest(1001)))?.id, old, 'the pushed index or image');
  assert.equal((await q.producerOf(digest(2002)))?.id, old, 'a patched platform manifest');
  assert.equal((await q.producerOf(digest(1))), undefined, 'the original is not an output');
  assert.equal((await q.newestByDigest('local', 'app', digest(1)))?.id, old, 'by original digest');
  assert.equal((await q.newestByTag('local', 'app', 'old'))?.id, old, 'by tag');
  assert.equal((await q.newestByTag('local', 'other', 'old')), undefined, 'another repository');
  const skipped = (await q.enqueue(request(5000, { tag: 'old' }))).id;
  await q.claim(new Date(Date.now() + 1000));
  assert.equal((await q.newestByTag('local', 'app', 'old'))?.id, skipped, 'the newest job for a tag wins');
  await q.succeed(skipped, 'skipped', { reason: 'nothing to patch', digest: digest(9999) });
  assert.equal((await q.producerOf(digest(9999))), undefined, 'only succeeded jobs produced anything');
});

test('a database written before job_outputs existed is indexed when opened', async () => {
  const { DatabaseSync } = await import('node:sqlite');
  const path = join(work.path, 'old-format.sqlite');
  const q1 = openSqliteQueue(path);
  const id = (await q1.enqueue(request(1))).id;
  await q1.claim();
  await q1.succeed(id, 'succeeded', { target: 'h/app:v1-patched', digest: digest(77), platforms: [{ manifestDigest: digest(78) }] });
  await q1.close();
  // As an earlier patchd left it: no outputs table, user_version 0.
  const raw = new DatabaseSync(path);
  raw.exec('DROP TABLE job_outputs; PRAGMA user_version = 0');
  raw.close();
  const q2 = openSqliteQueue(path);
  assert.equal((await q2.producerOf(digest(78)))?.id, id, 'backfilled from the stored result');
  await q2.close();
});

const patched = (n: number, reasons: string[]) => ({ status: 'patched', target: `h/app:v1-patched`, digest: digest(n), platforms: [{ packages: [{ name: 'libexpat1', to: '2', reasons }] }] });

test('re-evaluations: one job per (image, revision), only for originals patchd patched; webhook deliveries stay idempotent', async () => {
  const q = openSqliteQueue(':memory:');
  const first = (await q.enqueue(request(1))).id;
  assert.equal((await q.reevaluate({ ...request(1), trigger: 'advisories-changed', revision: 'r1' })), undefined, 'not patched yet: nothing to re-evaluate');
  await q.claim();
  await q.succeed(first, 'succeeded', patched(101, ['CVE-1']));
  assert.deepEqual((await q.enqueue(request(1))), { id: first, created: false }, 'a redelivered push is still the same job');
  const { tag: _tag, ...untagged } = request(1);
  const a = (await q.reevaluate({ ...untagged, trigger: 'advisories-changed', revision: 'r1', reason: 'OSV changed' }));
  assert.equal(a?.created, true, 'a re-evaluation for revision r1');
  assert.deepEqual((await q.reevaluate({ ...request(1), trigger: 'advisories-changed', revision: 'r1' })), { id: a!.id, created: false }, 'the same revision again: the same job');
  const job = (await q.get(a!.id))!;
  assert.deepEqual([job.tag, job.revision, job.reason, job.trigger], ['v1', 'r1', 'OSV changed', 'advisories-changed'], 'tag taken from the patch; revision and reason kept');
  assert.equal((await q.reevaluate({ ...request(1), trigger: 'schedule', revision: 'slot-2' }))?.created, true, 'a new revision: a new job');
  assert.equal((await q.lastPatch('local', 'app', digest(1)))?.id, first, 'the patch job, not the queued re-evaluations');
});

test('patchedImages: per tag, the original it was last seen at, with the newest patch and what it fixed', async () => {
  const q = openSqliteQueue(':memory:');
  const done = async (n: number, extra: Record<string, string>, status: 'succeeded' | 'skipped', result: unknown) => {
    const { id } = (await q.enqueue(request(n, extra)));
    await q.claim(new Date(Date.now() + 60_000));
    await q.succeed(id, status, result);
    return id;
  };
  await done(1, { tag: 'v1' }, 'succeeded', patched(101, ['CVE-1']));
  const v1Again = (await q.reevaluate({ ...request(1), trigger: 'schedule', revision: 's1' }))!.id;
  await q.claim(new Date(Date.now() + 60_000));
  await q.succeed(v1Again, 'succeeded', patched(102, ['CVE-1', 'CVE-2']));
  await done(2, { tag: 'v2' }, 'skipped', { status: 'up-to-date', platforms: [] }); // never patched: not listed
  await done(3, { tag: 'v3' }, 'succeeded', patched(103, ['CVE-3']));
  await done(4, { tag: 'v3' }, 'skipped', { reason: 'duplicate' }); // not a verdict on the image: v3 is still digest 3
  await done(5, { tag: 'v5' }, 'succeeded', patched(105, ['CVE-5']));
  await done(6, { tag: 'v5' }, 'skipped', { status: 'up-to-date', platforms: [] }); // v5 moved to an image with nothing to fix
  const dropped = (await q.reevaluate({ ...request(5, { tag: 'v5' }), trigger: 'schedule', revision: 's1' }))!.id;
  await q.claim(new Date(Date.now() + 60_000));
  await q.succeed(dropped, 'skipped', { status: 'up-to-date', platforms: [], reevaluation: { superseded: true } }); // v5 names digest 6 now: not a verdict on v5
  const images = (await q.patchedImages());
  assert.deepEqual(images.map((i) => [i.tag, i.digest, i.jobId === v1Again, i.patchedDigest, i.fixed]), [
    ['v1', digest(1), true, digest(102), ['CVE-1', 'CVE-2']],
    ['v3', digest(3), false, digest(103), ['CVE-3']],
  ], JSON.stringify(images));
});

test('a database from before re-evaluations gains their columns and keeps its jobs', async () => {
  const { DatabaseSync } = await import('node:sqlite');
  const path = join(work.path, 'before-revisions.sqlite');
  const q1 = openSqliteQueue(path);
  const id = (await q1.enqueue(request(1))).id;
  await q1.close();
  const raw = new DatabaseSync(path);
  raw.exec('ALTER TABLE jobs DROP COLUMN revision; ALTER TABLE jobs DROP COLUMN reason');
  raw.close();
  const q2 = openSqliteQueue(path);
  assert.equal((await q2.get(id))?.status, 'queued', 'the old job is there');
  assert.equal((await q2.enqueue({ ...request(2), revision: 'r', reason: 'why' })).created, true, 'new columns are written');
  await q2.close();
});

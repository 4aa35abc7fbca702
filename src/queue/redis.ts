import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import { fixedIds, type PatchResultSummary } from './patch-summary.js';
import { dedupeKey, enqueueArgs, outputDigests, scriptedMulti, seesTag, statuses, toJob, withScripts } from './redis-store.js';
import { QueueError, type Job, type JobQueue, type JobRequest, type JobStatus, type PatchedImage } from './types.js';

export interface RedisQueueOptions {
  /** redis:// or rediss:// (may carry a password: never logged, never in an error message). */
  readonly url: string;
  /** Prefix of every key (BullMQ's under `<prefix>:bull`, the job records under `<prefix>:q:`). */
  readonly prefix: string;
  /** How long a claim holds its job (and digest) without a heartbeat; renewed every third of it. */
  readonly lockMs: number;
  /** A job whose replica died this many times while running it ends dead (config worker.maxAttempts). */
  readonly maxAttempts: number;
}

/** What this process holds for a job it claimed: BullMQ's job and lock token, the digest lock, the heartbeat. */
interface Claimed {
  readonly bull: BullJob;
  readonly token: string;
  readonly lockKey?: string;
  readonly heartbeat: NodeJS.Timeout;
}

const queueName = 'patch-jobs';

/**
 * The JobQueue on Redis through BullMQ, for several replicas sharing one
 * queue. BullMQ schedules (wait, delayed for backoff), hands each job to one
 * claimant with a lock the claimant renews, and its stalled-job check puts a
 * job whose claimant stopped renewing (killed mid-job) back in line for
 * another replica. Job records, dedupe and the lookups live in Redis
 * structures beside it (redis-store.ts), written in one MULTI per change.
 * A per-digest lock keeps two replicas from patching one digest at once.
 */
export async function openRedisQueue(options: RedisQueueOptions): Promise<JobQueue> {
  const ns = `${options.prefix}:q:`;
  const bullPrefix = `${options.prefix}:bull`;
  const lockMs = Math.max(500, Math.round(options.lockMs));
  // Lookups and enqueues fail fast when Redis is away (a 503 the sender retries) instead of waiting for it.
  const client = withScripts(new Redis(options.url, { maxRetriesPerRequest: 1, commandTimeout: 5000, connectTimeout: 5000, lazyConnect: true }));
  client.on('error', () => {}); // reconnects on its own; callers see the failures of their own commands
  // The claimant side waits for Redis across an outage (BullMQ requires it of a worker's connection).
  const workerConnection = new Redis(options.url, { maxRetriesPerRequest: null, connectTimeout: 5000, lazyConnect: true });
  workerConnection.on('error', () => {});
  try {
    await client.connect();
    await workerConnection.connect();
  } catch (error) {
    client.disconnect();
    workerConnection.disconnect();
    throw unavailable(error);
  }
  const queue = new Queue(queueName, { connection: client, prefix: bullPrefix });
  queue.on('error', () => {});
  const worker = new Worker(queueName, null, {
    connection: workerConnection, prefix: bullPrefix, autorun: false, lockDuration: lockMs,
    // Checked about twice per lock period, so a dead replica's job is taken over soon after its lock lapses.
    stalledInterval: Math.max(250, Math.round(lockMs / 2)),
    // Never failed by BullMQ for stalling: claim() counts attempts and ends a job that keeps killing its replica.
    maxStalledCount: 1_000_000,
  });
  worker.on('error', () => {});
  void worker.startStalledCheckTimer();
  const claimed = new Map<string, Claimed>();
  let closed = false;

  const isOpen = () => {
    if (closed) throw new QueueError('QUEUE_CLOSED', 'the job queue is closed (patchd is shutting down)');
  };
  /** Redis calls: a closed queue or a Redis that does not answer is QUEUE_CLOSED / QUEUE_UNAVAILABLE (503 at the edge). */
  const redis = async <T>(work: () => Promise<T>): Promise<T> => {
    isOpen();
    try {
      return await work();
    } catch (error) {
      throw error instanceof QueueError ? error : unavailable(error);
    }
  };
  const now = () => new Date().toISOString();
  const record = async (id: string) => toJob(await client.hgetall(`${ns}job:${id}`));
  const records = async (ids: readonly string[]): Promise<Job[]> => {
    if (ids.length === 0) return [];
    const pipeline = client.pipeline();
    for (const id of ids) pipeline.hgetall(`${ns}job:${id}`);
    const replies = (await pipeline.exec()) ?? [];
    return replies.flatMap(([error, h]) => {
      if (error) throw error;
      const job = toJob(h as Record<string, string>);
      return job ? [job] : [];
    });
  };
  const newest = async (key: string) => {
    const [id] = await client.zrevrange(key, 0, 0);
    return id ? record(id) : undefined;
  };
  const image = (registry: string, repository: string, digest: string) => `${registry}|${repository}|${digest}`;
  const schedule = (ids: readonly string[], delayMs = 0) => queue.addBulk(ids.map((id) => ({
    name: 'patch', data: {},
    // Finished BullMQ jobs are dropped: the job record keeps the outcome, the dedupe hash keeps the id taken.
    opts: { jobId: id, removeOnComplete: true, removeOnFail: true, ...(delayMs > 0 ? { delay: delayMs } : {}) },
  })));

  const enqueueMany = async (requests: readonly JobRequest[]) => {
    const at = now();
    const multi = scriptedMulti(client);
    for (const request of requests) multi.patchdEnqueue(...enqueueArgs(ns, request, randomUUID(), at));
    const replies = (await multi.exec()) ?? [];
    const results = replies.map(([error, reply]) => {
      if (error) throw error;
      const [id, created, status] = reply as [string, number, string];
      return { id, created: created === 1, status };
    });
    // Scheduled after the records are written; a queued job found again is scheduled again (a no-op when BullMQ has it),
    // which also heals a record whose scheduling a crash cut off.
    const toSchedule = [...new Set(results.filter((r) => r.created || r.status === 'queued').map((r) => r.id))];
    if (toSchedule.length > 0) await schedule(toSchedule);
    return results.map(({ id, created }) => ({ id, created }));
  };

  const transition = (id: string, status: JobStatus, fields: Record<string, string> = {}) =>
    client.patchdTransition(ns, id, status, now(), ...Object.entries(fields).flat());

  const release = async (id: string) => {
    const held = claimed.get(id);
    if (!held) return undefined;
    claimed.delete(id);
    clearInterval(held.heartbeat);
    if (held.lockKey) await client.patchdReleaseLock(held.lockKey, held.token).catch(() => undefined);
    return held;
  };

  /**
   * Records a claimed job's outcome, then hands the BullMQ job on. A write Redis refuses is tried again for a
   * few seconds (a blip); after that the claim is let go, so its lock lapses and another attempt runs it.
   * A hand-on that fails (the lock lapsed meanwhile) is harmless: whoever claims the job finds it finished.
   */
  const settle = async (id: string, write: () => Promise<void>, handOn: (held: Claimed) => Promise<unknown>, unheld?: () => Promise<unknown>) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await write();
        break;
      } catch (error) {
        if (attempt >= 3 || closed) { await release(id); throw error; }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    const held = await release(id);
    if (held) await handOn(held).catch(() => undefined);
    else await unheld?.();
  };

  const heartbeat = (bull: BullJob, token: string, lockKey: string | undefined) => setInterval(() => {
    // A missed renewal is not fatal: the next one (a third of the lock later) tries again before the lock lapses.
    void bull.extendLock(token, lockMs).catch(() => undefined);
    if (lockKey) void client.patchdRenewLock(lockKey, token, lockMs).catch(() => undefined);
  }, Math.max(100, Math.floor(lockMs / 3)));

  /** A due-later retry made runnable now, for claim(now) with a future `now` (as SQLite's not_before <= now). */
  const promoteDueBy = async (at: Date) => {
    for (const bull of await queue.getDelayed(0, 99)) {
      const notBefore = bull.id ? await client.hget(`${ns}job:${bull.id}`, 'notBefore') : null;
      if (!notBefore || Date.parse(notBefore) <= at.getTime()) await (bull as BullJob).promote().catch(() => undefined);
    }
  };

  const claim = async (at: Date): Promise<Job | undefined> => {
    if (at.getTime() > Date.now() + 50) await promoteDueBy(at);
    // Jobs that turn out not to be runnable (finished already, digest busy) are set aside; a bounded number per call.
    for (let i = 0; i < 20; i++) {
      const token = randomUUID();
      const bull = await worker.getNextJob(token, { block: false });
      if (!bull?.id) return undefined;
      const id = bull.id;
      const job = await record(id);
      if (!job || job.status === 'succeeded' || job.status === 'skipped' || job.status === 'dead') {
        // Its outcome was recorded but the replica died before telling BullMQ: finish it there too.
        await bull.moveToCompleted(null, token, false);
        continue;
      }
      if (job.status === 'running' && job.attempts >= options.maxAttempts) {
        // Taken over from a replica that stopped mid-job, as many times as a job may be tried: a poison job, not bad luck.
        await transition(id, 'dead', { lastError: `INTERRUPTED: the replica running it stopped mid-job ${job.attempts} times (last error: ${job.lastError ?? 'none'})`, finishedAt: now() });
        await bull.moveToFailed(new Error('interrupted too often'), token, false);
        continue;
      }
      const lockKey = job.digest ? `${ns}lock:${image(job.registry, job.repository, job.digest)}` : undefined;
      if (lockKey && (await client.set(lockKey, token, 'PX', lockMs, 'NX')) !== 'OK') {
        // Another job for this digest is running (a re-evaluation, on this replica or another): try again shortly.
        await bull.moveToDelayed(Date.now() + Math.min(lockMs, 1000), token);
        continue;
      }
      const startedAt = now();
      await transition(id, 'running', { attempts: '+1', startedAt });
      claimed.set(id, { bull, token, heartbeat: heartbeat(bull, token, lockKey), ...(lockKey ? { lockKey } : {}) });
      return (await record(id))!;
    }
    return undefined;
  };

  const reevaluate = async (request: JobRequest & { digest: string; revision: string }) => {
    const previous = await newest(`${ns}patched:${image(request.registry, request.repository, request.digest)}`);
    if (!previous) return undefined;
    const tag = request.tag ?? previous.tag;
    return (await enqueueMany([{ ...request, ...(tag ? { tag } : {}) }]))[0]!;
  };

  return {
    enqueue: (request) => redis(async () => (await enqueueMany([request]))[0]!),
    enqueueMany: (requests) => redis(() => enqueueMany(requests)),
    claim: (at = new Date()) => redis(() => claim(at)),

    succeed: (id, status, result) => redis(() => settle(id, async () => {
      const at = now();
      const job = await record(id);
      const multi = scriptedMulti(client);
      multi.patchdTransition(ns, id, status, at, 'result', JSON.stringify(result ?? null), 'lastError', '', 'finishedAt', at);
      if (job && status === 'succeeded') {
        multi.patchdRecordSuccess(ns, id, job.digest ? image(job.registry, job.repository, job.digest) : '', '', ...outputDigests(result));
      }
      if (job?.tag && job.digest && seesTag(status, result)) multi.patchdTagSeen(ns, id, image(job.registry, job.repository, job.tag));
      for (const [error] of (await multi.exec()) ?? []) if (error) throw error;
    }, (held) => held.bull.moveToCompleted(null, held.token, false))),

    fail: (id, error, retryAt) => redis(() => retryAt
      ? settle(id, async () => { await transition(id, 'queued', { lastError: error, notBefore: retryAt.toISOString() }); },
        (held) => held.bull.moveToDelayed(retryAt.getTime(), held.token), () => schedule([id], retryAt.getTime() - Date.now()))
      : settle(id, async () => { await transition(id, 'dead', { lastError: error, finishedAt: now() }); },
        (held) => held.bull.moveToFailed(new Error(error), held.token, false))),

    holds: (id) => redis(async () => {
      const held = claimed.get(id);
      if (!held) return false;
      // Both locks still carry this claim's token: BullMQ's (lapsed, it hands the job to another replica) and the digest's.
      const [jobLock, digestLock] = await Promise.all([client.get(`${queue.toKey(id)}:lock`), held.lockKey ? client.get(held.lockKey) : held.token]);
      return jobLock === held.token && digestLock === held.token;
    }),
    abandon: (id) => redis(async () => { await release(id); }),

    attachDigest: (id, digest) => redis(async () => {
      const job = await record(id);
      if (!job) return false;
      const key = dedupeKey({ registry: job.registry, repository: job.repository, digest });
      return (await client.patchdAttachDigest(ns, id, key, now(), image(job.registry, job.repository, digest), digest)) === 1;
    }),

    /**
     * Several replicas share the queue, so nothing another replica runs is touched: a job whose replica died is
     * BullMQ's stalled check's to hand over. What is recovered is a record BullMQ lost sight of (a crash between
     * writing a job and scheduling it, or BullMQ's keys flushed): queued or running with no BullMQ job, scheduled again.
     */
    recoverInterrupted: () => redis(async () => {
      const ids = [...await client.zrange(`${ns}status:queued`, '0', '-1'), ...await client.zrange(`${ns}status:running`, '0', '-1')];
      if (ids.length === 0) return 0;
      const pipeline = client.pipeline();
      for (const id of ids) pipeline.exists(`${bullPrefix}:${queueName}:${id}`);
      const exists = ((await pipeline.exec()) ?? []).map(([, n]) => n === 1);
      const lost = ids.filter((_, i) => !exists[i]);
      for (const id of lost) await transition(id, 'queued');
      if (lost.length > 0) await schedule(lost);
      return lost.length;
    }),

    get: (id) => redis(() => record(id)),
    producerOf: (digest) => redis(async () => {
      // Newest first; a record is only ever indexed here once it succeeded.
      const [id] = await client.zrevrange(`${ns}output:${digest}`, 0, 0);
      return id ? record(id) : undefined;
    }),
    newestByDigest: (registry, repository, digest) => redis(() => newest(`${ns}by-digest:${image(registry, repository, digest)}`)),
    newestByTag: (registry, repository, tag) => redis(() => newest(`${ns}by-tag:${image(registry, repository, tag)}`)),
    lastPatch: (registry, repository, digest) => redis(() => newest(`${ns}patched:${image(registry, repository, digest)}`)),
    patchedImages: () => redis(async () => {
      const seen = await client.hgetall(`${ns}tags`);
      const images: PatchedImage[] = [];
      for (const row of await records(Object.values(seen))) {
        if (!row.tag || !row.digest) continue;
        const patch = await newest(`${ns}patched:${image(row.registry, row.repository, row.digest)}`);
        if (!patch) continue;
        const result = (patch.result ?? {}) as PatchResultSummary;
        images.push({
          registry: row.registry, repository: row.repository, tag: row.tag, digest: row.digest, jobId: patch.id,
          ...(result.target ? { target: result.target } : {}), ...(result.digest ? { patchedDigest: result.digest } : {}),
          fixed: fixedIds(result),
        });
      }
      const order = (i: PatchedImage) => `${i.registry}\u0000${i.repository}\u0000${i.tag}`;
      return images.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
    }),
    reevaluate: (request) => redis(() => reevaluate(request)),
    getSetting: (key) => redis(async () => (await client.hget(`${ns}settings`, key)) ?? undefined),
    putSetting: (key, value) => redis(async () => { await client.hset(`${ns}settings`, key, value); }),
    list: (options = {}) => redis(async () => {
      const limit = Math.min(Math.max(options.limit ?? 100, 1), 1000);
      return records(await client.zrevrange(options.status ? `${ns}status:${options.status}` : `${ns}all`, 0, limit - 1));
    }),
    listByImage: (registry, repository, tag, limit = 100) => redis(async () => {
      const key = tag !== undefined ? `${ns}by-tag:${image(registry, repository, tag)}` : `${ns}by-repo:${registry}|${repository}`;
      return records(await client.zrevrange(key, 0, Math.min(Math.max(limit, 1), 1000) - 1));
    }),
    counts: () => redis(async () => {
      const pipeline = client.pipeline();
      for (const status of statuses) pipeline.zcard(`${ns}status:${status}`);
      const replies = (await pipeline.exec()) ?? [];
      return Object.fromEntries(statuses.map((status, i) => {
        const [error, n] = replies[i] ?? [new Error('no reply'), 0];
        if (error) throw error;
        return [status, Number(n)];
      })) as Record<JobStatus, number>;
    }),
    async close() {
      if (closed) return;
      closed = true;
      // Jobs still held (a stop that timed out) keep their BullMQ lock until it lapses: another replica, or this one restarted, takes them over.
      for (const held of claimed.values()) clearInterval(held.heartbeat);
      claimed.clear();
      await worker.close(true).catch(() => undefined);
      await queue.close().catch(() => undefined);
      workerConnection.disconnect();
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/** A Redis failure as callers see it; the message never carries the URL (it may hold a password). */
function unavailable(error: unknown): QueueError {
  const message = error instanceof Error ? error.message : String(error);
  return new QueueError('QUEUE_UNAVAILABLE', `the Redis job queue did not answer: ${message.replace(/rediss?:\/\/\S*/g, 'redis://…')}`, { cause: error });
}

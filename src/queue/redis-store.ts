import type { Redis } from 'ioredis';
import type { Job, JobRequest, JobStatus } from './types.js';

// The job records on Redis, beside BullMQ's own keys (BullMQ schedules, locks
// and redelivers; these say what a job is and became, for /jobs, admission and
// continuous patching). Under `<prefix>:q:`:
//   job:<id>                 hash: the job (strings; '' = absent), its dedupe key and creation sequence
//   dedupe                   hash: dedupe key -> job id (one job per image, as SQLite's UNIQUE key)
//   seq                      counter: creation order (the score of every sorted set below)
//   all, status:<status>     sorted sets of job ids: /jobs and counts()
//   by-repo:<r|repo>, by-digest:<r|repo|d>, by-tag:<r|repo|tag>, patched:<r|repo|d>   jobs per image; succeeded ones per original
//   output:<digest>          succeeded jobs that pushed <digest> (producerOf)
//   tags                     hash: r|repo|tag -> newest job that patched it or found it up to date (patchedImages)
//   settings                 hash: small durable facts (the advisory revision last acted on)
//   lock:<r|repo|d>          the per-digest lock: the claim token holding it, with a TTL renewed by the holder

export const statuses: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'skipped', 'dead'];

const scripts = {
  // ARGV: ns, dedupe key, new id, at, registry, repository, digest, tag, source, trigger, revision, reason
  patchdEnqueue: `
    local ns = ARGV[1]
    local existing = redis.call('HGET', ns .. 'dedupe', ARGV[2])
    if existing then return {existing, 0, redis.call('HGET', ns .. 'job:' .. existing, 'status') or ''} end
    local id = ARGV[3]
    local seq = redis.call('INCR', ns .. 'seq')
    redis.call('HSET', ns .. 'dedupe', ARGV[2], id)
    redis.call('HSET', ns .. 'job:' .. id, 'id', id, 'key', ARGV[2], 'seq', seq, 'status', 'queued', 'attempts', 0,
      'createdAt', ARGV[4], 'updatedAt', ARGV[4], 'registry', ARGV[5], 'repository', ARGV[6], 'digest', ARGV[7], 'tag', ARGV[8],
      'source', ARGV[9], 'trigger', ARGV[10], 'revision', ARGV[11], 'reason', ARGV[12])
    redis.call('ZADD', ns .. 'all', seq, id)
    redis.call('ZADD', ns .. 'status:queued', seq, id)
    redis.call('ZADD', ns .. 'by-repo:' .. ARGV[5] .. '|' .. ARGV[6], seq, id)
    if ARGV[7] ~= '' then redis.call('ZADD', ns .. 'by-digest:' .. ARGV[5] .. '|' .. ARGV[6] .. '|' .. ARGV[7], seq, id) end
    if ARGV[8] ~= '' then redis.call('ZADD', ns .. 'by-tag:' .. ARGV[5] .. '|' .. ARGV[6] .. '|' .. ARGV[8], seq, id) end
    return {id, 1, 'queued'}`,
  // ARGV: ns, id, new status, at, field, value, ... ('attempts' '+1' increments). 0 when the job does not exist.
  patchdTransition: `
    local ns = ARGV[1]
    local key = ns .. 'job:' .. ARGV[2]
    local old = redis.call('HGET', key, 'status')
    if not old then return 0 end
    local seq = redis.call('HGET', key, 'seq')
    redis.call('ZREM', ns .. 'status:' .. old, ARGV[2])
    redis.call('ZADD', ns .. 'status:' .. ARGV[3], seq, ARGV[2])
    redis.call('HSET', key, 'status', ARGV[3], 'updatedAt', ARGV[4])
    for i = 5, #ARGV, 2 do
      if ARGV[i] == 'attempts' and ARGV[i + 1] == '+1' then redis.call('HINCRBY', key, 'attempts', 1)
      else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
    end
    return 1`,
  // A succeeded job's indexes. ARGV: ns, id, image (r|repo|digest), tag field (r|repo|tag or ''), then output digests.
  patchdRecordSuccess: `
    local ns = ARGV[1]
    local seq = tonumber(redis.call('HGET', ns .. 'job:' .. ARGV[2], 'seq'))
    if not seq then return 0 end
    if ARGV[3] ~= '' then redis.call('ZADD', ns .. 'patched:' .. ARGV[3], seq, ARGV[2]) end
    for i = 5, #ARGV do redis.call('ZADD', ns .. 'output:' .. ARGV[i], seq, ARGV[2]) end
    return 1`,
  // The newest job (by creation) that says what a tag names wins. ARGV: ns, id, r|repo|tag
  patchdTagSeen: `
    local ns = ARGV[1]
    local seq = tonumber(redis.call('HGET', ns .. 'job:' .. ARGV[2], 'seq'))
    local current = redis.call('HGET', ns .. 'tags', ARGV[3])
    if current then
      local held = tonumber(redis.call('HGET', ns .. 'job:' .. current, 'seq'))
      if held and seq and held > seq then return 0 end
    end
    redis.call('HSET', ns .. 'tags', ARGV[3], ARGV[2])
    return 1`,
  // A tag-only job learns its digest. ARGV: ns, id, new dedupe key, at, r|repo|digest, digest. 0: another job has it.
  patchdAttachDigest: `
    local ns = ARGV[1]
    local key = ns .. 'job:' .. ARGV[2]
    local seq = redis.call('HGET', key, 'seq')
    if not seq then return 0 end
    local holder = redis.call('HGET', ns .. 'dedupe', ARGV[3])
    if holder and holder ~= ARGV[2] then return 0 end
    local old = redis.call('HGET', key, 'key')
    if old and old ~= ARGV[3] and redis.call('HGET', ns .. 'dedupe', old) == ARGV[2] then redis.call('HDEL', ns .. 'dedupe', old) end
    redis.call('HSET', ns .. 'dedupe', ARGV[3], ARGV[2])
    redis.call('HSET', key, 'digest', ARGV[6], 'key', ARGV[3], 'updatedAt', ARGV[4])
    redis.call('ZADD', ns .. 'by-digest:' .. ARGV[5], seq, ARGV[2])
    return 1`,
  // Lock helpers: renew or release only a lock this token holds. KEYS[1] lock, ARGV: token, ttl ms
  patchdRenewLock: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`,
  patchdReleaseLock: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
} as const;

type ScriptName = keyof typeof scripts;
type Scripted = { [K in ScriptName]: (...args: (string | number)[]) => Promise<unknown> };
type ScriptedMulti = { [K in ScriptName]: (...args: (string | number)[]) => ScriptedMulti } & ReturnType<Redis['multi']>;

/** The client with the scripts above as commands (EVALSHA, loaded once per connection). */
export function withScripts(client: Redis): Redis & Scripted {
  for (const [name, lua] of Object.entries(scripts)) {
    const withKeys = name === 'patchdRenewLock' || name === 'patchdReleaseLock';
    client.defineCommand(name, { numberOfKeys: withKeys ? 1 : 0, lua });
  }
  return client as Redis & Scripted;
}

export function scriptedMulti(client: Redis): ScriptedMulti {
  return client.multi() as ScriptedMulti;
}

/** The dedupe key (as SQLite's): per digest, else per tag; a re-evaluation adds its revision. */
export function dedupeKey(r: { registry: string; repository: string; digest?: string | undefined; tag?: string | undefined; revision?: string | undefined }): string {
  return (r.digest ? `${r.registry}|${r.repository}|${r.digest}` : `${r.registry}|${r.repository}|tag:${r.tag ?? ''}`) + (r.revision ? `|re:${r.revision}` : '');
}

export function enqueueArgs(ns: string, request: JobRequest, id: string, at: string): string[] {
  return [ns, dedupeKey(request), id, at, request.registry, request.repository, request.digest ?? '', request.tag ?? '',
    request.source, request.trigger, request.revision ?? '', request.reason ?? ''];
}

/** A job hash as the Job the interface returns (the same shape SQLite gives). */
export function toJob(h: Record<string, string>): Job | undefined {
  if (!h['id']) return undefined;
  const opt = (name: string, as = name) => (h[name] ? { [as]: h[name] } : {});
  return {
    id: h['id'], registry: h['registry'] ?? '', repository: h['repository'] ?? '', source: h['source'] ?? '', trigger: h['trigger'] ?? '',
    status: (h['status'] ?? 'queued') as JobStatus, attempts: Number(h['attempts'] ?? 0), createdAt: h['createdAt'] ?? '', updatedAt: h['updatedAt'] ?? '',
    ...opt('digest'), ...opt('tag'), ...opt('revision'), ...opt('reason'), ...opt('lastError'),
    ...(h['result'] ? { result: JSON.parse(h['result']) as unknown } : {}),
    ...opt('startedAt'), ...opt('finishedAt'),
  } as Job;
}

/** The digests a succeeded job's result says it pushed (see JobQueue.producerOf). */
export function outputDigests(result: unknown): string[] {
  const r = (result ?? {}) as { digest?: unknown; platforms?: unknown };
  const out = new Set<string>();
  if (typeof r.digest === 'string') out.add(r.digest);
  if (Array.isArray(r.platforms)) for (const p of r.platforms) if (p && typeof (p as { manifestDigest?: unknown }).manifestDigest === 'string') out.add((p as { manifestDigest: string }).manifestDigest);
  return [...out];
}

/** Whether a finished job says what its tag names now: it patched it, or found it up to date (not a re-evaluation dropped because the tag moved on). */
export function seesTag(status: 'succeeded' | 'skipped', result: unknown): boolean {
  if (status === 'succeeded') return true;
  const r = (result ?? {}) as { status?: unknown; reevaluation?: { superseded?: unknown } };
  return r.status === 'up-to-date' && (r.reevaluation?.superseded === undefined || r.reevaluation.superseded === null);
}

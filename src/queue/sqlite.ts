import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fixedIds, type PatchResultSummary } from './patch-summary.js';
import { QueueError, type Job, type JobQueue, type JobRequest, type JobStatus, type PatchedImage } from './types.js';

interface Row {
  id: string; registry: string; repository: string; digest: string | null; tag: string | null; source: string; trigger: string;
  status: JobStatus; attempts: number; last_error: string | null; result: string | null; revision: string | null; reason: string | null;
  created_at: string; updated_at: string; started_at: string | null; finished_at: string | null;
}

/** The queue's methods as SQLite runs them: synchronously (node:sqlite), each write committed before it returns. */
type SyncQueue = { [K in keyof JobQueue]: JobQueue[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : never };

/** The embedded default: one SQLite file (WAL) in dataDir; every write is committed before its promise resolves. */
export function openSqliteQueue(path: string): JobQueue {
  const store = openSqliteStore(path);
  // Synchronous inside (one process, no round trips); the interface is async so a shared Redis can stand in.
  return Object.fromEntries(Object.entries(store).map(([name, method]) => [name, async (...args: unknown[]) => (method as (...a: unknown[]) => unknown)(...args)])) as unknown as JobQueue;
}

function openSqliteStore(path: string): SyncQueue {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  // node:sqlite (built into Node.js 24): no native addon to compile on install or in the image.
  const db = new DatabaseSync(path, { timeout: 5000 });
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL'); // WAL + NORMAL: durable across process crashes (kill -9)
  db.exec(`
    CREATE TABLE IF NOT EXISTS jobs (
      id TEXT PRIMARY KEY,
      dedupe_key TEXT NOT NULL UNIQUE,
      registry TEXT NOT NULL, repository TEXT NOT NULL, digest TEXT, tag TEXT, source TEXT NOT NULL, trigger TEXT NOT NULL,
      status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, result TEXT,
      not_before TEXT NOT NULL,
      created_at TEXT NOT NULL, updated_at TEXT NOT NULL, started_at TEXT, finished_at TEXT
    );
    CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs (status, not_before);
    CREATE INDEX IF NOT EXISTS jobs_by_digest ON jobs (registry, repository, digest, created_at);
    CREATE INDEX IF NOT EXISTS jobs_by_tag ON jobs (registry, repository, tag, created_at);
    -- What each succeeded job pushed, so admission finds a patched digest's job however old it is.
    CREATE TABLE IF NOT EXISTS job_outputs (
      digest TEXT NOT NULL, job_id TEXT NOT NULL, created_at TEXT NOT NULL,
      PRIMARY KEY (digest, job_id)
    );
    CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `);
  // The digests a result names (see JobQueue.producerOf), for one job (?1) or, at start-up, every job that predates job_outputs.
  const recordOutputs = (where: string) => db.prepare(`INSERT OR IGNORE INTO job_outputs (digest, job_id, created_at)
    SELECT d, id, created_at FROM (
      SELECT json_extract(jobs.result, '$.digest') AS d, jobs.id AS id, jobs.created_at AS created_at FROM jobs WHERE ${where}
      UNION ALL
      SELECT json_extract(p.value, '$.manifestDigest'), jobs.id, jobs.created_at FROM jobs, json_each(jobs.result, '$.platforms') AS p WHERE ${where}
    ) WHERE d IS NOT NULL`);
  if (Number(db.prepare('PRAGMA user_version').get()?.['user_version'] ?? 0) < 1) {
    recordOutputs("jobs.status = 'succeeded' AND json_valid(jobs.result)").run();
    db.exec('PRAGMA user_version = 1');
  }
  // Re-evaluations (continuous patching) say which revision they run for and why; older databases gain the columns.
  const columns = new Set((db.prepare('PRAGMA table_info(jobs)').all() as { name: string }[]).map((c) => c.name));
  for (const column of ['revision', 'reason']) if (!columns.has(column)) db.exec(`ALTER TABLE jobs ADD COLUMN ${column} TEXT`);
  const recordJobOutputs = recordOutputs("jobs.id = ?1 AND jobs.status = 'succeeded' AND json_valid(jobs.result)");

  const now = () => new Date().toISOString();
  const keyOf = (r: { registry: string; repository: string; digest?: string | null; tag?: string | null; revision?: string | null }) =>
    (r.digest ? `${r.registry}|${r.repository}|${r.digest}` : `${r.registry}|${r.repository}|tag:${r.tag ?? ''}`) + (r.revision ? `|re:${r.revision}` : '');
  const toJob = (row: Row): Job => ({
    id: row.id, registry: row.registry, repository: row.repository, source: row.source, trigger: row.trigger,
    status: row.status, attempts: row.attempts, createdAt: row.created_at, updatedAt: row.updated_at,
    ...(row.digest ? { digest: row.digest } : {}), ...(row.tag ? { tag: row.tag } : {}),
    ...(row.revision ? { revision: row.revision } : {}), ...(row.reason ? { reason: row.reason } : {}),
    ...(row.last_error ? { lastError: row.last_error } : {}), ...(row.result ? { result: JSON.parse(row.result) as unknown } : {}),
    ...(row.started_at ? { startedAt: row.started_at } : {}), ...(row.finished_at ? { finishedAt: row.finished_at } : {}),
  });

  const insert = db.prepare(`INSERT INTO jobs (id, dedupe_key, registry, repository, digest, tag, source, trigger, revision, reason, status, not_before, created_at, updated_at)
    VALUES (@id, @key, @registry, @repository, @digest, @tag, @source, @trigger, @revision, @reason, 'queued', @at, @at, @at) ON CONFLICT(dedupe_key) DO NOTHING`);
  const byKey = db.prepare('SELECT id FROM jobs WHERE dedupe_key = ?');
  // Never a second job for a digest one is running for (a re-evaluation beside its push): one patch of a digest at a time.
  const next = db.prepare(`SELECT * FROM jobs WHERE status = 'queued' AND not_before <= ?
    AND (digest IS NULL OR NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.registry = jobs.registry AND r.repository = jobs.repository AND r.digest = jobs.digest AND r.status = 'running'))
    ORDER BY not_before, created_at LIMIT 1`);
  const markRunning = db.prepare(`UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = @at, updated_at = @at WHERE id = @id AND status = 'queued'`);
  const byId = db.prepare('SELECT * FROM jobs WHERE id = ?');
  const producer = db.prepare(`SELECT jobs.* FROM job_outputs JOIN jobs ON jobs.id = job_outputs.job_id
    WHERE job_outputs.digest = ? AND jobs.status = 'succeeded' ORDER BY job_outputs.created_at DESC, jobs.rowid DESC LIMIT 1`);
  const newestByDigest = db.prepare('SELECT * FROM jobs WHERE registry = ? AND repository = ? AND digest = ? ORDER BY created_at DESC, rowid DESC LIMIT 1');
  const newestByTag = db.prepare('SELECT * FROM jobs WHERE registry = ? AND repository = ? AND tag = ? ORDER BY created_at DESC, rowid DESC LIMIT 1');
  const lastPatch = db.prepare(`SELECT * FROM jobs WHERE registry = ? AND repository = ? AND digest = ? AND status = 'succeeded' ORDER BY created_at DESC, rowid DESC LIMIT 1`);
  // The original each tag was last seen at: its newest job that patched it or found it up to date (not a re-evaluation dropped because the tag had moved on).
  const newestPerTag = db.prepare(`SELECT * FROM (
      SELECT jobs.*, ROW_NUMBER() OVER (PARTITION BY registry, repository, tag ORDER BY created_at DESC, rowid DESC) AS n FROM jobs
      WHERE tag IS NOT NULL AND digest IS NOT NULL
        AND (status = 'succeeded' OR (status = 'skipped' AND json_valid(result) AND json_extract(result, '$.status') = 'up-to-date'
          AND json_extract(result, '$.reevaluation.superseded') IS NULL))
    ) WHERE n = 1 ORDER BY registry, repository, tag`);
  const first = (row: unknown) => (row ? toJob(row as Row) : undefined);

  // BEGIN IMMEDIATE takes the write lock up front, so two processes never claim the same row.
  const transaction = <A extends unknown[], R>(body: (...args: A) => R) => (...args: A): R => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = body(...args);
      db.exec('COMMIT');
      return result;
    } catch (error) {
      db.exec('ROLLBACK');
      throw error;
    }
  };

  /** Jobs this handle claimed and has not settled: what holds() answers for. */
  const mine = new Set<string>();
  const claim = transaction((at: string): Job | undefined => {
    const row = next.get(at) as unknown as Row | undefined;
    if (!row) return undefined;
    markRunning.run({ id: row.id, at });
    mine.add(row.id);
    return toJob(byId.get(row.id) as unknown as Row);
  });

  const enqueueOne = (request: JobRequest, at: string) => {
    const id = randomUUID();
    const key = keyOf(request);
    const info = insert.run({
      id, key, registry: request.registry, repository: request.repository, digest: request.digest ?? null, tag: request.tag ?? null,
      source: request.source, trigger: request.trigger, revision: request.revision ?? null, reason: request.reason ?? null, at,
    });
    if (Number(info.changes) === 1) return { id, created: true };
    return { id: (byKey.get(key) as unknown as { id: string }).id, created: false };
  };
  const enqueueMany = transaction((requests: readonly JobRequest[]) => {
    const at = now();
    return requests.map((r) => enqueueOne(r, at));
  });

  const reevaluate = transaction((request: JobRequest & { digest: string; revision: string }) => {
    const previous = first(lastPatch.get(request.registry, request.repository, request.digest));
    if (!previous) return undefined;
    const tag = request.tag ?? previous.tag;
    return enqueueOne({ ...request, ...(tag ? { tag } : {}) }, now());
  });

  // A closed queue (shutting down) is a dependency that is not there: 503 at the edge, not a bug.
  const isOpen = () => {
    if (!db.isOpen) throw new QueueError('QUEUE_CLOSED', 'the job queue is closed (patchd is shutting down)');
  };

  return {
    enqueue: (request) => { isOpen(); return enqueueMany([request])[0]!; },
    enqueueMany: (requests) => { isOpen(); return enqueueMany(requests); },
    claim: (at = new Date()) => claim(at.toISOString()),
    succeed: transaction((id: string, status: 'succeeded' | 'skipped', result: unknown) => {
      mine.delete(id);
      const at = now();
      db.prepare(`UPDATE jobs SET status = ?, result = ?, last_error = NULL, finished_at = ?, updated_at = ? WHERE id = ?`).run(status, JSON.stringify(result ?? null), at, at, id);
      recordJobOutputs.run(id);
    }),
    // One process runs the queue: a job it claimed is its own until it settles it (or a restart requeues it).
    holds: (id) => { isOpen(); return mine.has(id) && (byId.get(id) as unknown as Row | undefined)?.status === 'running'; },
    abandon: (id) => { mine.delete(id); },
    fail(id, error, retryAt) {
      mine.delete(id);
      const at = now();
      if (retryAt) db.prepare(`UPDATE jobs SET status = 'queued', last_error = ?, not_before = ?, updated_at = ? WHERE id = ?`).run(error, retryAt.toISOString(), at, id);
      else db.prepare(`UPDATE jobs SET status = 'dead', last_error = ?, finished_at = ?, updated_at = ? WHERE id = ?`).run(error, at, at, id);
    },
    attachDigest(id, digest) {
      const row = byId.get(id) as unknown as Row | undefined;
      if (!row) return false;
      const key = keyOf({ registry: row.registry, repository: row.repository, digest });
      const holder = byKey.get(key) as unknown as { id: string } | undefined;
      if (holder && holder.id !== id) return false;
      db.prepare('UPDATE jobs SET digest = ?, dedupe_key = ?, updated_at = ? WHERE id = ?').run(digest, key, now(), id);
      return true;
    },
    recoverInterrupted() {
      return Number(db.prepare(`UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'`).run(now()).changes);
    },
    get: (id) => {
      isOpen();
      const row = byId.get(id) as unknown as Row | undefined;
      return row ? toJob(row) : undefined;
    },
    producerOf: (digest) => {
      isOpen();
      return first(producer.get(digest));
    },
    newestByDigest: (registry, repository, digest) => {
      isOpen();
      return first(newestByDigest.get(registry, repository, digest));
    },
    newestByTag: (registry, repository, tag) => {
      isOpen();
      return first(newestByTag.get(registry, repository, tag));
    },
    patchedImages() {
      isOpen();
      const images: PatchedImage[] = [];
      for (const row of newestPerTag.all() as unknown as Row[]) {
        const patch = first(lastPatch.get(row.registry, row.repository, row.digest));
        if (!patch || !row.tag || !row.digest) continue;
        const result = (patch.result ?? {}) as PatchResultSummary;
        images.push({
          registry: row.registry, repository: row.repository, tag: row.tag, digest: row.digest, jobId: patch.id,
          ...(result.target ? { target: result.target } : {}), ...(result.digest ? { patchedDigest: result.digest } : {}),
          fixed: fixedIds(result),
        });
      }
      return images;
    },
    lastPatch: (registry, repository, digest) => {
      isOpen();
      return first(lastPatch.get(registry, repository, digest));
    },
    reevaluate: (request) => { isOpen(); return reevaluate(request); },
    getSetting: (key) => {
      isOpen();
      return (db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined)?.value;
    },
    putSetting: (key, value) => {
      isOpen();
      db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
    },
    list(options = {}) {
      isOpen();
      const limit = Math.min(Math.max(options.limit ?? 100, 1), 1000);
      const rows = options.status
        ? db.prepare('SELECT * FROM jobs WHERE status = ? ORDER BY created_at DESC LIMIT ?').all(options.status, limit)
        : db.prepare('SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?').all(limit);
      return (rows as unknown as Row[]).map(toJob);
    },
    listByImage(registry, repository, tag, limit = 100) {
      isOpen();
      const n = Math.min(Math.max(limit, 1), 1000);
      const rows = tag !== undefined
        ? db.prepare('SELECT * FROM jobs WHERE registry = ? AND repository = ? AND tag = ? ORDER BY created_at DESC, rowid DESC LIMIT ?').all(registry, repository, tag, n)
        : db.prepare('SELECT * FROM jobs WHERE registry = ? AND repository = ? ORDER BY created_at DESC, rowid DESC LIMIT ?').all(registry, repository, n);
      return (rows as unknown as Row[]).map(toJob);
    },
    counts() {
      isOpen();
      const out: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, skipped: 0, dead: 0 };
      for (const r of db.prepare('SELECT status, COUNT(*) n FROM jobs GROUP BY status').all() as unknown as { status: JobStatus; n: number }[]) out[r.status] = r.n;
      return out;
    },
    close: () => db.close(),
  };
}

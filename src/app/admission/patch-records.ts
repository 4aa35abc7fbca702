import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { Job, JobQueue } from '../../queue/types.js';

/** What the admission webhooks need of the job store. */
export interface PatchRecords {
  /** The succeeded job that pushed `digest` (its patched image, or one patched platform of it). */
  producerOf(digest: string): Promise<PatchJob | undefined>;
  /**
   * The newest job for an original image: the one for its digest when given
   * (or a tag-only job still waiting for the worker to resolve its digest),
   * else the newest for its tag.
   */
  latestFor(original: { readonly registry: string; readonly repository: string; readonly digest?: string; readonly tag?: string }): Promise<PatchJob | undefined>;
}

/** A job as admission reads it: its outcome parsed out of `result`. */
export interface PatchJob {
  readonly job: Job;
  /** What patchd pushed, for a succeeded job: `host/repo:tag-patched` and its digest. */
  readonly patched?: { readonly target: string; readonly digest: string };
  /** Why a skipped job did nothing. */
  readonly reason?: string;
}

const ResultSchema = z.looseObject({
  target: z.string().optional(),
  digest: z.string().optional(),
  reason: z.string().optional(),
});

/**
 * PatchRecords over the job store's indexed lookups (any job, however old),
 * each answer reused for `ttlMs` (0: asked every time) so a burst of pods
 * naming the same images costs one query per image.
 */
export function jobStoreRecords(queue: JobQueue, options: { readonly ttlMs: number; readonly max?: number }): PatchRecords {
  const cache = options.ttlMs > 0 ? new LRUCache<string, { job?: PatchJob }>({ max: options.max ?? 10_000, ttl: options.ttlMs }) : undefined;
  const cached = async (key: string, lookup: () => Promise<Job | undefined>): Promise<PatchJob | undefined> => {
    const hit = cache?.get(key);
    if (hit) return hit.job;
    const job = await lookup();
    const answer = job ? { job: patchJob(job) } : {};
    cache?.set(key, answer);
    return answer.job;
  };

  return {
    producerOf: (digest) => cached(`out|${digest}`, () => queue.producerOf(digest)),
    async latestFor({ registry, repository, digest, tag }) {
      const forTag = tag ? await cached(`tag|${registry}|${repository}|${tag}`, () => queue.newestByTag(registry, repository, tag)) : undefined;
      if (!digest) return forTag;
      // A tag-only push not yet resolved by the worker may be this digest's job.
      return (await cached(`digest|${registry}|${repository}|${digest}`, () => queue.newestByDigest(registry, repository, digest)))
        ?? (forTag && !forTag.job.digest ? forTag : undefined);
    },
  };
}

/** A job with its result read: what it pushed and why it skipped. */
function patchJob(job: Job): PatchJob {
  const parsed = ResultSchema.safeParse(job.result);
  const result = parsed.success ? parsed.data : {};
  const patched = job.status === 'succeeded' && result.target && result.digest ? { target: result.target, digest: result.digest } : undefined;
  return { job, ...(patched ? { patched } : {}), ...(job.status === 'skipped' && result.reason ? { reason: result.reason } : {}) };
}

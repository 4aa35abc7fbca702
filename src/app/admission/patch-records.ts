import { z } from 'zod';
import type { Job, JobQueue } from '../../queue/types.js';

/** What the admission webhooks need of the job store. */
export interface PatchRecords {
  /** The succeeded job that pushed `digest` (its patched image, or one patched platform of it). */
  producerOf(digest: string): PatchJob | undefined;
  /**
   * The newest job for an original image: the one for its digest when given
   * (or a tag-only job still waiting for the worker to resolve its digest),
   * else the newest for its tag.
   */
  latestFor(original: { readonly registry: string; readonly repository: string; readonly digest?: string; readonly tag?: string }): PatchJob | undefined;
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
  platforms: z.array(z.looseObject({ manifestDigest: z.string().optional() })).optional(),
});

/** How many of the newest jobs (and, apart, of the newest succeeded ones) are indexed. */
const scanLimit = 1000;

/**
 * PatchRecords over the JobQueue interface: an index of the newest jobs,
 * rebuilt at most once per `ttlMs` (0: on every lookup). JobQueue has no
 * lookup by digest, so jobs older than the newest 1000 (succeeded: 1000 more)
 * are not seen; verified mode still recognises their images by patchd's
 * annotations.
 */
export function jobStoreRecords(queue: JobQueue, options: { readonly ttlMs: number; readonly now?: () => number }): PatchRecords {
  const now = options.now ?? Date.now;
  let index: { at: number; byOutput: Map<string, PatchJob>; byDigest: Map<string, PatchJob>; byTag: Map<string, PatchJob> } | undefined;

  const current = () => {
    if (index && options.ttlMs > 0 && now() - index.at < options.ttlMs) return index;
    const byOutput = new Map<string, PatchJob>();
    const byDigest = new Map<string, PatchJob>();
    const byTag = new Map<string, PatchJob>();
    const seen = new Set<string>();
    // Newest first: the first job seen for a tag is its newest.
    const jobs = [...queue.list({ limit: scanLimit }), ...queue.list({ status: 'succeeded', limit: scanLimit })]
      .filter((j) => !seen.has(j.id) && seen.add(j.id))
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
    for (const job of jobs) {
      const { outputs, ...record } = patchJob(job);
      for (const digest of outputs) if (!byOutput.has(digest)) byOutput.set(digest, record);
      if (job.digest) {
        const key = originalKey(job.registry, job.repository, `@${job.digest}`);
        if (!byDigest.has(key)) byDigest.set(key, record);
      }
      if (job.tag) {
        const key = originalKey(job.registry, job.repository, `:${job.tag}`);
        if (!byTag.has(key)) byTag.set(key, record);
      }
    }
    index = { at: now(), byOutput, byDigest, byTag };
    return index;
  };

  return {
    producerOf: (digest) => current().byOutput.get(digest),
    latestFor({ registry, repository, digest, tag }) {
      const { byDigest, byTag } = current();
      const forTag = tag ? byTag.get(originalKey(registry, repository, `:${tag}`)) : undefined;
      if (!digest) return forTag;
      // A tag-only push not yet resolved by the worker may be this digest's job.
      return byDigest.get(originalKey(registry, repository, `@${digest}`)) ?? (forTag && !forTag.job.digest ? forTag : undefined);
    },
  };
}

function originalKey(registry: string, repository: string, id: string): string {
  return `${registry}|${repository}|${id}`;
}

/** A job with its result read: what it pushed (the image, and each patched platform of an index) and why it skipped. */
function patchJob(job: Job): PatchJob & { readonly outputs: readonly string[] } {
  const parsed = ResultSchema.safeParse(job.result);
  const result = parsed.success ? parsed.data : {};
  const patched = job.status === 'succeeded' && result.target && result.digest ? { target: result.target, digest: result.digest } : undefined;
  const outputs = patched ? [patched.digest, ...(result.platforms ?? []).flatMap((p) => (p.manifestDigest ? [p.manifestDigest] : []))] : [];
  return { job, outputs, ...(patched ? { patched } : {}), ...(job.status === 'skipped' && result.reason ? { reason: result.reason } : {}) };
}

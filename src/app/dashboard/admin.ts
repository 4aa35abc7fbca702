import { createHash, timingSafeEqual } from 'node:crypto';
import type { Job, JobQueue } from '../../queue/types.js';

/**
 * Whether `given` is the admin token, compared in constant time (both sides
 * hashed first, so neither the content nor the length leaks through timing).
 * No token configured: nothing is ever allowed.
 */
export function isAdminToken(expected: string | undefined, given: unknown): boolean {
  if (!expected || typeof given !== 'string' || given.length === 0) return false;
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(given));
}

/**
 * CSRF: whether a POST comes from the dashboard's own pages. Browsers send
 * Sec-Fetch-Site and Origin with every form post; a cross-site one is refused
 * even when it carries the token. Clients that send neither (curl) are not
 * browsers, so there is no session to ride on: the token alone decides.
 */
export function fromThisSite(requestUrl: string, origin: string | undefined, fetchSite: string | undefined): boolean {
  if (fetchSite) return fetchSite === 'same-origin' || fetchSite === 'none';
  if (origin) return origin === new URL(requestUrl).origin;
  return true;
}

/**
 * Queues a failed job's image again. The new job is keyed by the failed job's
 * id (as a revision), so a double-submitted form makes one job, and runs as a
 * re-evaluation: when the tag has moved on to another original since, nothing
 * is pushed for the old one.
 */
export async function retryJob(queue: JobQueue, job: Job): Promise<{ id: string; created: boolean }> {
  return await queue.enqueue({
    registry: job.registry, repository: job.repository, source: job.source, trigger: 'retry',
    ...(job.digest ? { digest: job.digest } : {}), ...(job.tag ? { tag: job.tag } : {}),
    revision: `retry:${job.id}`,
    reason: `retried from the dashboard after job ${job.id} failed: ${job.lastError ?? 'no error recorded'}`.slice(0, 1000),
  });
}

import { codedError, type ErrorCodes } from '../lib/errors.js';

export const queueCodes = { QUEUE_CLOSED: 'unavailable', QUEUE_UNAVAILABLE: 'unavailable' } as const satisfies ErrorCodes;
export type QueueCode = keyof typeof queueCodes;

export class QueueError extends codedError(queueCodes) {}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'skipped' | 'dead';

export interface JobRequest {
  /** Configured registry name. */
  readonly registry: string;
  readonly repository: string;
  readonly digest?: string;
  readonly tag?: string;
  readonly source: string;
  readonly trigger: string;
  /**
   * A re-evaluation of an original already patched: the advisory revision or
   * schedule slot it runs for. Part of the dedupe key, so repeated triggers
   * for one revision make one job and a new revision makes another.
   */
  readonly revision?: string;
  /** Why the job exists, in words (/jobs shows it): which advisories changed, which schedule. */
  readonly reason?: string;
}

/** The newest patch patchd made of the image a (registry, repository, tag) names: what continuous patching re-evaluates. */
export interface PatchedImage {
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  /** The original's digest (what is patched again). */
  readonly digest: string;
  /** The succeeded job that pushed the current patch. */
  readonly jobId: string;
  readonly target?: string;
  readonly patchedDigest?: string;
  /** Finding ids the patch fixed (the plan's reasons). */
  readonly fixed: readonly string[];
}

export interface Job extends JobRequest {
  readonly id: string;
  readonly status: JobStatus;
  readonly attempts: number;
  readonly lastError?: string;
  /** JSON result of the patch (outcome summary), when finished. */
  readonly result?: unknown;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
}

/**
 * The durable queue. Enqueue is idempotent per (registry, repository, digest)
 * — or per tag when the sender gave no digest — so at-least-once delivery and
 * one-event-per-child never patch twice.
 */
export interface JobQueue {
  enqueue(request: JobRequest): Promise<{ readonly id: string; readonly created: boolean }>;
  /** Several at once, in one transaction (one commit): what group commit builds on. */
  enqueueMany(requests: readonly JobRequest[]): Promise<{ readonly id: string; readonly created: boolean }[]>;
  /** The next runnable job, marked running; undefined when none is due. */
  claim(now?: Date): Promise<Job | undefined>;
  succeed(id: string, status: 'succeeded' | 'skipped', result: unknown): Promise<void>;
  /** Failed attempt: back to queued after `retryAt`, or dead when attempts are exhausted. */
  fail(id: string, error: string, retryAt: Date | undefined): Promise<void>;
  /**
   * Whether this process still holds its claim on running job `id`. A replica that stalled past its lock
   * (a blocked event loop, a network partition) may have lost the job to another one: it must publish nothing.
   */
  holds(id: string): Promise<boolean>;
  /** Lets go of a claim lost to another replica, recording nothing (the replica that took the job over will). */
  abandon(id: string): Promise<void>;
  /** A digest found for a tag-only job; false when another job already has it (the duplicate is skipped). */
  attachDigest(id: string, digest: string): Promise<boolean>;
  /** Jobs left running by a crash go back to the queue. */
  recoverInterrupted(): Promise<number>;
  get(id: string): Promise<Job | undefined>;
  /**
   * The newest succeeded job that pushed `digest`: a succeeded job's result
   * names what it pushed in `digest` (the patched image or index) and
   * `platforms[].manifestDigest` (each patched platform's manifest).
   */
  producerOf(digest: string): Promise<Job | undefined>;
  /** The newest job for an image pushed as repository@digest. */
  newestByDigest(registry: string, repository: string, digest: string): Promise<Job | undefined>;
  /** The newest job for an image pushed as repository:tag. */
  newestByTag(registry: string, repository: string, tag: string): Promise<Job | undefined>;
  /**
   * Per (registry, repository, tag): the original digest the tag was last seen
   * at (newest patched or up-to-date job), when patchd has patched it.
   */
  patchedImages(): Promise<PatchedImage[]>;
  /** The newest succeeded (patched) job for an original digest. */
  lastPatch(registry: string, repository: string, digest: string): Promise<Job | undefined>;
  /**
   * Enqueue a re-evaluation of an original that has a succeeded patch job
   * (its tag taken from that job when the request has none); undefined when
   * patchd never patched it. Idempotent per (image, revision).
   */
  reevaluate(request: JobRequest & { readonly digest: string; readonly revision: string }): Promise<{ readonly id: string; readonly created: boolean } | undefined>;
  /** Small durable facts patchd keeps across restarts (the advisory revision last acted on). */
  getSetting(key: string): Promise<string | undefined>;
  putSetting(key: string, value: string): Promise<void>;
  list(options?: { status?: JobStatus; limit?: number }): Promise<Job[]>;
  /** An image's jobs, newest first: every job for a repository, or for one of its tags (limit 1..1000, default 100). */
  listByImage(registry: string, repository: string, tag?: string, limit?: number): Promise<Job[]>;
  counts(): Promise<Record<JobStatus, number>>;
  close(): Promise<void>;
}

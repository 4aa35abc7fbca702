import { formatReference } from '../oci/reference.js';
import { patchImage } from '../pipeline/patch-image.js';
import type { PatchDependencies, PatchOptions, PatchOutcome } from '../pipeline/types.js';
import type { Job, JobQueue } from '../queue/types.js';
import { newFixes } from './new-fixes.js';

/** A re-evaluation's patch step and what it adds to the job's result (why it pushed, or why not). */
export interface Reevaluation {
  patch(deps: PatchDependencies, options: PatchOptions): Promise<PatchOutcome>;
  summary(): Record<string, unknown>;
}

/**
 * Runs a re-evaluation job (continuous patching): the original is planned
 * again with today's advisories in a dry run first, and patched again only
 * when the plan holds something its newest patch did not; otherwise nothing
 * is pushed and the job is up to date. An original its tag no longer names
 * is dropped, so an old image never replaces the patch of a newer one.
 */
export function reevaluation(queue: JobQueue, job: Job): Reevaluation {
  let note: Record<string, unknown> = {};
  return {
    summary: () => ({ reevaluation: { trigger: job.trigger, revision: job.revision, ...note } }),
    async patch(deps, options) {
      const image = options.image;
      const previous = image.digest ? queue.lastPatch(job.registry, job.repository, image.digest) : undefined;
      if (!previous || !image.digest) {
        note = { reason: 'no earlier patch of this original is recorded: patched as a new image' };
        return patchImage(deps, options);
      }
      const upToDate = (reason: string, outcome: Partial<PatchOutcome>): PatchOutcome => {
        note = { ...note, reason, previousJob: previous.id };
        return { source: formatReference(image), sourceDigest: image.digest!, platforms: [], bytesDownloaded: 0, ...outcome, status: 'up-to-date' };
      };
      const current = image.tag ? await deps.client.headManifest({ registry: image.registry, repository: image.repository, tag: image.tag }) : undefined;
      if (current?.digest !== image.digest) {
        note = { superseded: true };
        return upToDate(`${image.repository}:${image.tag ?? ''} now names ${current?.digest ?? 'nothing'}, not this original: nothing pushed`, {});
      }
      const trial = await patchImage(deps, { ...options, dryRun: true });
      const fresh = newFixes(previous.result, trial);
      const earlier = (previous.result ?? {}) as { target?: string; digest?: string };
      if (fresh.length === 0) {
        return upToDate(`nothing new to fix since job ${previous.id} (${earlier.target ?? ''}@${earlier.digest ?? ''}): nothing pushed`, { platforms: trial.platforms });
      }
      note = { previousJob: previous.id, newFixes: fresh, reason: `new since job ${previous.id}: ${fresh.join('; ')}` };
      return patchImage(deps, options);
    },
  };
}

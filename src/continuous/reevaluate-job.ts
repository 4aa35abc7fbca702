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
 * Runs a re-evaluation job (continuous patching): the original is patched
 * again with today's advisories. patchImage plans it against the patch the
 * tag already holds and pushes only when something is new (else
 * `up-to-date`, nothing pushed); the result names the job it was compared
 * with and what is new since (its plan against that job's). An original its
 * tag no longer names is dropped, so an old image never replaces the patch
 * of a newer one.
 */
export function reevaluation(queue: JobQueue, job: Job): Reevaluation {
  let note: Record<string, unknown> = {};
  return {
    summary: () => ({ reevaluation: { trigger: job.trigger, revision: job.revision, ...note } }),
    async patch(deps, options) {
      const image = options.image;
      const previous = image.digest ? await queue.lastPatch(job.registry, job.repository, image.digest) : undefined;
      const current = image.tag ? await deps.client.headManifest({ registry: image.registry, repository: image.repository, tag: image.tag }) : undefined;
      if (!image.digest || current?.digest !== image.digest) {
        note = { superseded: true, reason: `${image.repository}:${image.tag ?? ''} now names ${current?.digest ?? 'nothing'}, not this original: nothing pushed` };
        return { status: 'up-to-date', source: formatReference(image), sourceDigest: image.digest ?? '', platforms: [], bytesDownloaded: 0 };
      }
      const outcome = await patchImage(deps, options);
      const since = previous ? ` since job ${previous.id}` : '';
      if (outcome.status !== 'patched') {
        note = { ...(previous ? { previousJob: previous.id } : {}), reason: `nothing new to fix${since}: nothing pushed${outcome.reason ? ` (${outcome.reason})` : ''}` };
        return outcome;
      }
      const fresh = previous ? newFixes(previous.result, outcome) : [];
      note = { ...(previous ? { previousJob: previous.id } : {}), newFixes: fresh, reason: fresh.length > 0 ? `new${since}: ${fresh.join('; ')}` : `patched again${since}` };
      return outcome;
    },
  };
}

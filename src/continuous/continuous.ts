import { repositoryAllowed, type Config } from '../config.js';
import type { Logger } from '../lib/log.js';
import type { JobQueue } from '../queue/types.js';
import { OsvDatabase } from '../scan/sources/osv.js';
import { advisoryFiles, contentHashes, describeChanges, fingerprint, revisionOf } from './advisory-files.js';

const revisionSetting = 'continuous.osvRevision';

export type ContinuousTrigger = 'advisories-changed' | 'schedule' | 'harbor-scan';

/**
 * Enqueues a re-evaluation of every image patchd patched (per tag, the
 * original it names now), one job per image and revision. Advisory changes
 * skip registries whose findings come from Harbor's scanner (the OSV data
 * does not drive their plans; Harbor's SCANNING_COMPLETED does).
 */
export async function enqueueReevaluations(queue: JobQueue, config: Config, run: { trigger: ContinuousTrigger; revision: string; reason: string }): Promise<{ id: string; created: boolean }[]> {
  const jobs: { id: string; created: boolean }[] = [];
  for (const image of await queue.patchedImages()) {
    const registry = config.registries[image.registry];
    if (!registry || !repositoryAllowed(registry.policy, image.repository)) continue;
    if (run.trigger === 'advisories-changed' && registry.scanner === 'harbor') continue;
    const job = await queue.reevaluate({
      registry: image.registry, repository: image.repository, digest: image.digest, tag: image.tag,
      source: 'continuous', trigger: run.trigger, revision: run.revision, reason: run.reason,
    });
    if (job) jobs.push(job);
  }
  return jobs;
}

export interface Continuous {
  /** The OSV advisories as last loaded (reloaded when their files change). */
  osv(): OsvDatabase | undefined;
  stop(): void;
}

/**
 * Continuous patching in `patchd serve`: polls `advisories.osv` (sizes and
 * mtimes every pollSeconds; a change is read once it has settled), reloads
 * the OSV data when the content really changed and re-evaluates patched
 * images (also at start, when they changed while patchd was stopped); and,
 * with intervalMinutes, re-evaluates them on a schedule. A bad
 * half-written file keeps the previous data and is read again next poll.
 */
export async function startContinuous(deps: {
  config: Config; queue: JobQueue; logger: Logger; paths: readonly string[]; osv?: OsvDatabase; onEnqueued: () => void;
}): Promise<Continuous> {
  const { config, queue, paths, onEnqueued } = deps;
  const logger = deps.logger.child({ component: 'continuous' });
  const settings = config.continuous;
  let osv = deps.osv;
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;

  const trigger = async (run: { trigger: ContinuousTrigger; revision: string; reason: string }) => {
    const jobs = await enqueueReevaluations(queue, config, run);
    const created = jobs.filter((j) => j.created).length;
    logger.info({ trigger: run.trigger, revision: run.revision, images: jobs.length, created }, 're-evaluating patched images');
    if (created > 0) onEnqueued();
  };

  if (paths.length > 0 && (settings.watchAdvisories ?? true)) {
    let files = await advisoryFiles(paths);
    let seen = fingerprint(files);
    let hashes = await contentHashes(files);
    let revision = revisionOf(hashes);
    let busy = false;
    const settleMs = Math.min(1000, settings.pollSeconds * 500);
    const poll = async () => {
      if (busy || stopped) return;
      busy = true;
      try {
        let now = await advisoryFiles(paths);
        if (fingerprint(now) === seen) return;
        // A copy or an unzip in progress: wait until two looks agree.
        for (let i = 0; i < 10; i++) {
          await new Promise((r) => setTimeout(r, settleMs));
          const again = await advisoryFiles(paths);
          if (fingerprint(again) === fingerprint(now)) break;
          now = again;
        }
        const nextHashes = await contentHashes(now);
        const next = revisionOf(nextHashes);
        if (next === revision) { seen = fingerprint(now); files = now; logger.debug({ revision }, 'advisory files touched, content unchanged'); return; }
        const loaded = await OsvDatabase.load(paths);
        const changes = describeChanges(hashes, nextHashes);
        osv = loaded;
        files = now; seen = fingerprint(now); hashes = nextHashes; revision = next;
        logger.info({ revision, records: loaded.recordCount, changes }, 'advisories reloaded');
        await trigger({ trigger: 'advisories-changed', revision: `osv:${revision}`, reason: `OSV advisories changed (${changes}); ${loaded.recordCount} records, revision ${revision}` });
        await queue.putSetting(revisionSetting, revision);
      } catch (error) {
        logger.warn({ err: (error as Error).message }, 'advisories could not be reloaded; keeping the previous data, trying again next poll');
      } finally {
        busy = false;
      }
    };
    timers.push(setInterval(() => void poll(), settings.pollSeconds * 1000));
    logger.info({ paths, pollSeconds: settings.pollSeconds, revision, files: files.size }, 'watching advisories');
    // Changed while patchd was stopped: the revision last acted on is kept in the job store.
    const actedOn = await queue.getSetting(revisionSetting);
    if (actedOn && actedOn !== revision) {
      await trigger({ trigger: 'advisories-changed', revision: `osv:${revision}`, reason: `OSV advisories changed while patchd was stopped (revision ${actedOn} -> ${revision}); ${osv?.recordCount ?? 0} records` });
    }
    await queue.putSetting(revisionSetting, revision);
  }

  if (settings.intervalMinutes) {
    const intervalMs = settings.intervalMinutes * 60_000;
    timers.push(setInterval(() => {
      if (stopped) return;
      const slot = Math.floor(Date.now() / intervalMs);
      trigger({ trigger: 'schedule', revision: `schedule:${intervalMs}:${slot}`, reason: `scheduled re-evaluation (every ${settings.intervalMinutes} minutes), slot ${new Date(slot * intervalMs).toISOString()}` })
        .catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'scheduled re-evaluation could not be enqueued'));
    }, intervalMs));
  }

  return {
    osv: () => osv,
    stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
    },
  };
}

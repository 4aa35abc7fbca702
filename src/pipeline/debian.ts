import { buildPatchLayer } from '../executors/buildkit/executor.js';
import { aptInstall } from '../executors/buildkit/strategies/apt.js';
import type { DpkgDatabase, UserDatabase } from '../distro/deb/dpkg-database.js';
import { DebError } from '../distro/deb/errors.js';
import { executeDebPlan } from '../executors/deb/executor.js';
import { mirroredSourcesFile, readAptSources, type AptRepositories } from '../distro/deb/repository/index.js';
import type { Layer } from '../image/layer.js';
import { createLayerBuilder, type WrittenLayer } from '../image/layer-builder.js';
import { resolveDebUpgrades } from '../plan/deb-upgrades.js';
import { debUpgradeRequest } from '../plan/os-request.js';
import type { PatchPlan, PlannedPackage } from '../plan/types.js';
import { hasAdvisoryData } from '../scan/scan.js';
import { buildkitRun, PipelineError, verifyInstalled, verifyWritten, type PlatformContext, type PlatformResult } from './context.js';
import { patchLayerMediaType } from './layer-media-type.js';
import { debPatchLayerKey, patchLayerCache } from './patch-layer-cache.js';

/**
 * Debian-family images with apt sources: the apt-get upgrade plan, built
 * in-process, or by BuildKit when asked to or when a package's maintainer
 * scripts must run (then the whole plan, as one apt transaction).
 */
export async function patchDebianPlatform(ctx: PlatformContext, { db, users, repositories }: { db: DpkgDatabase; users: UserDatabase; repositories: AptRepositories }): Promise<PlatformResult> {
  const { deps, options, ref, manifest, image, platform, workDir, fs, reads, inventory, findings, advisories, scanned, libraryPlan } = ctx;
  const { logger } = deps;
  const osPackage = inventory.packages.find((p) => p.class === 'os');
  const request = debUpgradeRequest(osPackage && hasAdvisoryData(osPackage, inventory.os, advisories) ? findings : 'all');
  const plan: PatchPlan = { ...resolveDebUpgrades({ installed: db.packages, repositories, request }), ...libraryPlan };
  logger.info({ platform, packages: plan.packages.map((p) => `${p.name} ${p.from} -> ${p.to}`), heldBack: plan.heldBack, unavailable: plan.unavailable, libraries: plan.libraries?.map((l) => `${l.name} ${l.from} -> ${l.to}`), skipped: plan.skipped }, 'plan');
  if (plan.packages.length === 0 || options.dryRun) {
    return { outcome: { platform, ...scanned, plan, failed: [] }, bytesDownloaded: repositories.stats.bytesDownloaded };
  }

  const mediaType = patchLayerMediaType(manifest.mediaType, options.compression);
  options.onProgress?.({ stage: 'build', detail: platform });
  const executor = options.executor ?? 'auto';
  if (executor === 'buildkit' && !deps.buildkit) throw new PipelineError('BUILDKIT_NOT_CONFIGURED', '--executor buildkit needs a BuildKit daemon (--buildkit-addr, or buildkit.address in the config)');
  const viaBuildkit = async (): Promise<Built> => {
    if (db.layout !== 'status') throw new PipelineError('EXECUTOR_UNSUPPORTED', 'distroless (status.d) images are not patched through BuildKit yet');
    const arch = (await fs.readFile('var/lib/dpkg/arch'))?.toString('utf8').split('\n')[0]?.trim() || image.config.architecture;
    const mirrored = deps.mirrors?.apt ? mirroredSourcesFile(await readAptSources(fs), deps.mirrors.apt) : undefined;
    const layer = await buildPatchLayer(
      buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options),
      (base) => aptInstall(base, plan.packages.map((p) => ({ name: p.name, version: p.to, architecture: p.architecture })), arch, mirrored),
      mediaType,
    );
    return { layer, applied: plan.packages, failed: [], bytesDownloaded: repositories.stats.bytesDownloaded, executor: 'buildkit' };
  };
  const layerCache = patchLayerCache({ cacheDir: deps.cacheDir, logger });
  const viaInProcess = async (ignoreErrors: boolean): Promise<Built | undefined> => {
    const key = await debPatchLayerKey({ packages: plan.packages, mediaType, ignoreErrors });
    const kept = await layerCache.find(key, fs);
    if (kept) {
      // The same plan on a base that reads the same: the layer an earlier build made and verified.
      logger.info({ platform, layer: kept.digest }, 'reusing the patch layer built for the same plan on the same base');
      options.onProgress?.({ stage: 'build', detail: `reused ${kept.digest}` });
      return { layer: kept, applied: plan.packages, failed: [], bytesDownloaded: repositories.stats.bytesDownloaded, executor: 'inprocess', verified: true };
    }
    const builder = createLayerBuilder({ tmpDir: workDir, mediaType });
    try {
      const result = await executeDebPlan({
        base: fs, db, users, plan, repositories, builder, tmpDir: workDir, ignoreErrors, logger, debCacheDir: deps.cacheDir,
        onProgress: (e) => options.onProgress?.({ stage: 'package', ...e }),
      });
      if (result.applied.length === 0 || (result.failed.length > 0 && deps.buildkit && executor === 'auto')) {
        await builder.dispose();
        return result.applied.length === 0 && !(deps.buildkit && executor === 'auto')
          ? { applied: [], failed: result.failed, bytesDownloaded: result.bytesDownloaded, executor: 'inprocess' }
          : undefined;
      }
      // Verified as it is written: the layer's tar is read back in the same pass, not from the file afterwards.
      options.onProgress?.({ stage: 'verify', detail: platform });
      const layer = await builder.write({ readBack: verifyWritten(expectedVersions(result.applied), db.layout) });
      const keep = result.failed.length === 0 ? { key, written: layer } : undefined;
      return { layer, applied: result.applied, failed: result.failed, bytesDownloaded: result.bytesDownloaded, executor: 'inprocess', verified: true, ...(keep ? { keep } : {}) };
    } catch (error) {
      await builder.dispose();
      if (error instanceof DebError && error.code === 'SCRIPTS_REQUIRED' && !deps.buildkit) {
        throw new DebError('SCRIPTS_REQUIRED', `${error.message} (no BuildKit daemon is configured: --buildkit-addr)`, { cause: error });
      }
      throw error;
    }
  };
  // auto: in-process; a package whose scripts patchd cannot stand in for sends the whole plan to BuildKit (one apt transaction, one layer).
  let built: Built;
  if (executor === 'buildkit') built = await viaBuildkit();
  else {
    const inProcess = await viaInProcess(options.ignoreErrors || (executor === 'auto' && deps.buildkit !== undefined));
    if (inProcess) built = inProcess;
    else {
      logger.info({ platform }, 'some packages need their maintainer scripts run: building the patch layer with BuildKit');
      built = await viaBuildkit();
    }
  }
  const noBuildkit = executor !== 'buildkit' && !deps.buildkit ? ' (no BuildKit daemon is configured: --buildkit-addr)' : '';
  const failed = [...built.failed.map((f) => ({ name: f.pkg.name, error: `${f.error.message}${f.error instanceof DebError && f.error.code === 'SCRIPTS_REQUIRED' ? noBuildkit : ''}` }))];
  if (!built.layer) {
    return { outcome: { platform, ...scanned, plan, failed, skipped: 'every planned package failed (ignoreErrors)' }, bytesDownloaded: built.bytesDownloaded };
  }
  const layer = built.layer;

  if (!built.verified) {
    options.onProgress?.({ stage: 'verify', detail: platform });
    await verifyInstalled(layer, expectedVersions(built.applied), db.layout);
  }
  if (built.keep) await layerCache.keep(built.keep.key, reads(), built.keep.written);

  return {
    outcome: { platform, ...scanned, plan, failed },
    patch: { layer, executor: built.executor, summary: built.applied.map((p) => `${p.name} ${p.from} -> ${p.to}`).join(', ') },
    bytesDownloaded: built.bytesDownloaded,
  };
}

const expectedVersions = (applied: readonly PlannedPackage[]) => applied.map((p) => ({ name: p.name, architecture: p.architecture, version: p.to }));

interface Built {
  readonly layer?: Layer & { readonly diffId: string };
  readonly applied: readonly PlannedPackage[];
  readonly failed: readonly { readonly pkg: PlannedPackage; readonly error: Error }[];
  readonly bytesDownloaded: number;
  readonly executor: 'inprocess' | 'buildkit';
  /** Checked already: read back as it was written, or taken from the patch layer cache (checked when it was built). */
  readonly verified?: boolean;
  /** A clean in-process build: kept for reuse once verified. */
  readonly keep?: { readonly key: string; readonly written: WrittenLayer };
}

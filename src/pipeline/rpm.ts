import { patchRpmImage } from '../executors/buildkit/tooling-patch.js';
import type { PatchPlan } from '../plan/types.js';
import { hasAdvisoryData } from '../scan/scan.js';
import { buildkitRun, PipelineError, type PlatformContext, type PlatformResult } from './context.js';
import { patchLayerMediaType } from './layer-media-type.js';

/** rpm-family images: their package manager (or a dnf tooling image) upgrades them, in BuildKit. */
export async function patchRpmPlatform(ctx: PlatformContext): Promise<PlatformResult> {
  const { deps, options, ref, manifest, image, platform, workDir, fs, inventory, findings, advisories, scanned, emptyPlan } = ctx;
  const { logger } = deps;
    const osPackage = inventory.packages.find((p) => p.ecosystem === 'rpm')!;
    const request = hasAdvisoryData(osPackage, inventory.os, advisories) ? findings : 'all' as const;
    if (options.executor === 'inprocess' || !deps.buildkit) {
      const why = options.executor === 'inprocess' ? 'RPM packages are installed by their package manager in the BuildKit executor, not in-process' : 'RPM packages need the BuildKit executor; no BuildKit daemon is configured (--buildkit-addr)';
      if (!options.ignoreErrors) throw new PipelineError('EXECUTOR_UNAVAILABLE', why);
      return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: why, failed: [] }, bytesDownloaded: 0 };
    }
    if (options.dryRun) {
      const what = request === 'all' ? 'every available update' : [...new Set(request.filter((f) => f.package.ecosystem === 'rpm').map((f) => f.package.name))].join(', ');
      return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `dry run: the BuildKit executor would upgrade ${what || 'nothing'} with the image's package manager`, failed: [] }, bytesDownloaded: 0 };
    }
    options.onProgress?.({ stage: 'build', detail: platform });
    const result = await patchRpmImage({
      run: buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options),
      fs, inventory, request, mediaType: patchLayerMediaType(manifest.mediaType, options.compression),
      ...(deps.buildkit.toolingImages?.rpm ? { toolingImage: deps.buildkit.toolingImages.rpm } : {}),
      ...(deps.mirrors?.rpm ? { mirrors: deps.mirrors.rpm } : {}),
    });
    const rpmPlan: PatchPlan = { ...emptyPlan, upgraded: result.upgraded };
    if (!result.layer) return { outcome: { platform, ...scanned, plan: rpmPlan, failed: [] }, bytesDownloaded: 0 };
    const summary = result.upgraded.map((u) => `${u.name} ${u.from} -> ${u.to}`).join(', ');
    return {
      outcome: { platform, ...scanned, plan: rpmPlan, failed: [] },
      patch: { layer: result.layer, executor: 'buildkit', tool: result.tool, summary },
      bytesDownloaded: 0,
    };
}

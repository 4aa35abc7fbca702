import { patchDistrolessImage } from '../executors/buildkit/tooling-patch.js';
import type { PatchPlan } from '../plan/types.js';
import { hasAdvisoryData } from '../scan/scan.js';
import { buildkitRun, verifyInstalled, type PlatformContext, type PlatformResult } from './context.js';
import { patchLayerMediaType } from './layer-media-type.js';

/** Distroless Debian images: no apt sources and no shell; a Debian tooling image's apt works on them through BuildKit. */
export async function patchDistrolessPlatform(ctx: PlatformContext): Promise<PlatformResult> {
  const { deps, options, ref, manifest, image, platform, workDir, fs, inventory, findings, advisories, scanned, emptyPlan } = ctx;
  const { logger } = deps;
    const osPackage = inventory.packages.find((p) => p.ecosystem === 'debian');
    const request = osPackage && hasAdvisoryData(osPackage, inventory.os, advisories) ? findings : 'all' as const;
    if (options.dryRun) {
      return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `dry run: the BuildKit executor would upgrade ${request === 'all' ? 'every package with a newer candidate' : 'the packages findings name'} with the tooling image's apt`, failed: [] }, bytesDownloaded: 0 };
    }
    options.onProgress?.({ stage: 'build', detail: platform });
    const result = await patchDistrolessImage({
      run: buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options),
      inventory, request, toolingImage: deps.buildkit!.toolingImages!.deb!, nativeArchitecture: (await fs.readFile('var/lib/dpkg/arch'))?.toString('utf8').split('\n')[0]?.trim() || image.config.architecture,
      mediaType: patchLayerMediaType(manifest.mediaType, options.compression),
      ...(deps.mirrors?.apt ? { mirrors: deps.mirrors.apt } : {}),
    });
    const distrolessPlan: PatchPlan = { ...emptyPlan, upgraded: result.upgraded };
    if (!result.layer) return { outcome: { platform, ...scanned, plan: distrolessPlan, failed: [] }, bytesDownloaded: 0 };
    await verifyInstalled(result.layer, result.upgraded.map((u) => ({ name: u.name, architecture: u.architecture, version: u.to })), 'status.d');
    return {
      outcome: { platform, ...scanned, plan: distrolessPlan, failed: [] },
      patch: { layer: result.layer, executor: 'buildkit', tool: 'distroless', summary: result.upgraded.map((u) => `${u.name} ${u.from} -> ${u.to}`).join(', ') },
      bytesDownloaded: 0,
    };
}

import { buildPatchLayer } from '../executors/buildkit/executor.js';
import type { LibraryExecutor, LibraryInstallContext, LibraryInstallResult } from '../executors/library/types.js';
import { createLayerBuilder } from '../image/layer-builder.js';
import { mergeLayerInto } from '../image/merge-layer.js';
import { PatchdError } from '../lib/errors.js';
import { defaultLibraryIndexUrls, type PackageIndexes } from '../plan/library-index.js';
import type { PlannedLibrary } from '../plan/types.js';
import { scanLayers } from '../scan/scan.js';
import { scanCacheFor } from '../scan/scan-cache.js';
import { buildkitRun, PipelineError, type PatchLayer, type PlatformContext, type PlatformResult } from './context.js';
import { patchLayerMediaType } from './layer-media-type.js';
import { libraryExecutors } from './library-executors.js';

/**
 * The library step: every planned library upgrade lands in the same single
 * patch layer as the OS step's changes. Each ecosystem's executor installs
 * in-process what it can install exactly; the rest runs its package tool in
 * BuildKit (one build per ecosystem) and its diff is merged in. The result is verified by
 * re-scanning the patched image.
 */
export async function patchLibraries(ctx: PlatformContext, os: PlatformResult): Promise<PlatformResult> {
  const { deps, options, image, manifest, ref, platform, workDir, fs, inventory, logger } = { ...ctx, logger: ctx.deps.logger };
  const libraries = ctx.libraryPlan.libraries;
  options.onProgress?.({ stage: 'build', detail: `${platform} libraries` });
  const mediaType = patchLayerMediaType(manifest.mediaType, options.compression);
  const builder = createLayerBuilder({ tmpDir: workDir, mediaType });
  try {
    if (os.patch) await mergeLayerInto(builder, os.patch.layer);
    const install: LibraryInstallContext = {
      base: fs, inventory, builder, logger, dispatcher: deps.dispatcher, tmpDir: workDir,
      platform: { os: image.config.os ?? 'linux', architecture: image.config.architecture, ...(image.config.variant ? { variant: image.config.variant } : {}) },
      indexes: deps.packageIndexes ?? publicIndexes,
      ...(options.executor === 'buildkit' ? { preferBuildkit: true } : {}),
      toolingImages: { ...(deps.buildkit?.toolingImages?.go ? { go: deps.buildkit.toolingImages.go } : {}), ...(deps.buildkit?.toolingImages?.dotnet ? { dotnet: deps.buildkit.toolingImages.dotnet } : {}) },
      ...(options.toolchainPatchLevel ? { toolchainPatchLevel: options.toolchainPatchLevel } : {}),
    };
    const results: { executor: LibraryExecutor; result: LibraryInstallResult }[] = [];
    const failed: { library: PlannedLibrary; error: Error }[] = [];
    for (const [ecosystem, group] of Map.groupBy(libraries, (l) => l.ecosystem)) {
      const executor = libraryExecutors.find((e) => e.ecosystem === ecosystem);
      if (!executor) {
        for (const library of group) failed.push({ library, error: new PipelineError('EXECUTOR_UNSUPPORTED', `no executor installs ${ecosystem} libraries yet`) });
        continue;
      }
      const result = await executor.installInProcess(install, group);
      results.push({ executor, result });
      failed.push(...result.failed);
    }

    // What in-process cannot do exactly: the package tools, in BuildKit on the original image.
    const deferred = results.filter((r) => r.result.deferred.length > 0);
    const viaBuildkit: PlannedLibrary[] = [];
    if (deferred.length > 0) {
      const runnable = deferred.filter((r) => r.executor.buildkitSteps && deps.buildkit && options.executor !== 'inprocess');
      for (const r of deferred.filter((d) => !runnable.includes(d))) {
        const why = options.executor === 'inprocess' ? '--executor inprocess' : deps.buildkit ? `patchd has no BuildKit strategy for ${r.executor.ecosystem} yet` : 'no BuildKit daemon is configured: --buildkit-addr';
        for (const d of r.result.deferred) failed.push({ library: d.library, error: new PipelineError('EXECUTOR_UNAVAILABLE', `${d.why}, which needs BuildKit (${why})`) });
      }
      // One build per ecosystem: BuildKit exports the diff over a chain of execs as one layer per exec, and each executor's steps are one exec.
      for (const r of runnable) {
        const libs = r.result.deferred.map((d) => d.library);
        const run = buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options);
        const layer = await buildPatchLayer(run, (base) => ({ lower: base, upper: r.executor.buildkitSteps!(base, libs, install) }), mediaType);
        await mergeLayerInto(builder, layer);
        viaBuildkit.push(...libs);
      }
    }

    if (failed.length > 0 && !options.ignoreErrors) throw libraryFailure(failed);
    const inProcess = results.flatMap((r) => r.result.applied);
    const applied = [...inProcess, ...viaBuildkit];
    const bytesDownloaded = os.bytesDownloaded + results.reduce((n, r) => n + r.result.bytesDownloaded, 0);
    const skipped = results.flatMap((r) => r.result.skipped ?? []).map(({ library: l, why }) => ({ ecosystem: l.ecosystem, name: l.name, version: l.from, path: l.path, reason: why, findings: l.reasons }));
    const outcome = {
      ...os.outcome,
      ...(os.outcome.plan ? { plan: { ...os.outcome.plan, libraries: os.outcome.plan.libraries?.filter((l) => !skipped.some((s) => s.path === l.path && s.name === l.name)), skipped: [...(os.outcome.plan.skipped ?? []), ...skipped] } } : {}),
      failed: [...os.outcome.failed, ...failed.map((f) => ({ name: `${f.library.name} (${f.library.ecosystem}, ${f.library.location ?? f.library.path})`, error: f.error.message }))],
    };
    if (applied.length === 0) {
      await builder.dispose();
      return { ...os, outcome };
    }
    const layer = await builder.write();
    options.onProgress?.({ stage: 'verify', detail: `${platform} libraries` });
    await verifyLibraries(ctx, layer, applied);
    const summary = [os.patch?.summary, ...applied.map((l) => `${l.name} ${l.from} -> ${l.to}`)].filter(Boolean).join(', ');
    const executor: PatchLayer['executor'] = os.patch?.executor === 'buildkit' || viaBuildkit.length > 0 ? 'buildkit' : 'inprocess';
    return { outcome, patch: { layer, summary, executor, ...(os.patch?.tool ? { tool: os.patch.tool } : {}) }, bytesDownloaded };
  } catch (error) {
    await builder.dispose();
    throw error;
  }
}

const publicIndexes: PackageIndexes = {
  pypi: { url: defaultLibraryIndexUrls.pypi },
  npm: { url: defaultLibraryIndexUrls.npm },
  goProxy: { url: defaultLibraryIndexUrls.goProxy },
  nuget: { url: defaultLibraryIndexUrls.nuget },
};

/**
 * Re-reads the patched image (the original layers plus the new one) with the
 * scanner: each applied library is at its target version in its place and
 * nowhere else at another version there; no other library changed versions.
 */
async function verifyLibraries(ctx: PlatformContext, layer: Parameters<typeof mergeLayerInto>[1], applied: readonly PlannedLibrary[]): Promise<void> {
  const { inventory: after } = await scanLayers([...ctx.image.layers, layer], { tmpDir: ctx.workDir, logger: ctx.deps.logger, cache: { store: scanCacheFor(ctx.deps.cacheDir, ctx.deps.logger) } });
  const place = (p: { ecosystem: string; name: string; location?: string }) => `${p.ecosystem}\0${p.name.toLowerCase()}\0${p.location ?? ''}`;
  const expected = new Map(applied.map((l) => [place(l), l]));
  for (const library of applied) {
    const found = after.packages.filter((p) => place(p) === place(library));
    const versions = [...new Set(found.map((p) => p.version))];
    if (versions.length !== 1 || versions[0] !== library.to) {
      throw new PipelineError('VERIFY_FAILED', `${library.name} in ${library.location ?? library.path}: expected only ${library.to} after patching, found ${versions.join(', ') || 'nothing'}`);
    }
  }
  const before = new Map(ctx.inventory.packages.filter((p) => p.class === 'library').map((p) => [`${place(p)}\0${p.path}`, p.version]));
  for (const p of after.packages) {
    if (p.class !== 'library' || expected.has(place(p))) continue;
    const was = before.get(`${place(p)}\0${p.path}`);
    if (was !== undefined && was !== p.version) throw new PipelineError('VERIFY_FAILED', `${p.name} in ${p.path} changed from ${was} to ${p.version}, which the plan did not ask for`);
  }
}

/** One error for the failed libraries: the first failure's own code and kind (so a transient index outage is retried), naming them all. */
function libraryFailure(failed: readonly { library: PlannedLibrary; error: Error }[]): Error {
  const names = failed.map((f) => `${f.library.name} (${f.library.ecosystem}): ${f.error.message}`).join('; ');
  const first = failed[0]!.error;
  const message = `${names} (use --ignore-errors to patch the rest)`;
  if (first instanceof PatchdError) return new PatchdError(first.code, first.kind, message, { cause: first });
  return new PipelineError('LIBRARY_FAILED', message, { cause: first });
}

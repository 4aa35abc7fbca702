import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadImageRepositories } from '../distro/deb/repository/for-image.js';
import { DpkgDatabase, readUserDatabase } from '../distro/deb/dpkg-database.js';
import type { Image } from '../image/mutate.js';
import { resolveImage, type PlatformTarget } from '../image/resolve.js';
import type { ImageIndex } from '../image/types.js';
import { formatReference, withDigest, type Reference } from '../oci/reference.js';
import { planGoToolchains } from '../plan/go-toolchain.js';
import { planLibraryUpgrades } from '../plan/library-upgrades.js';
import type { PatchPlan, PlannedLibrary, SkippedPackage } from '../plan/types.js';
import { Annotation } from '../publish/annotations.js';
import { PipelineError, withPatchLayer, type PlatformContext, type PlatformResult } from './context.js';
import { patchLibraries } from './libraries.js';
import type { PatchDependencies, PatchOptions, PatchOutcome, PlatformOutcome } from './types.js';
import { patchDebianPlatform } from './debian.js';
import { patchDistrolessPlatform } from './distroless.js';
import { patchRpmPlatform } from './rpm.js';
import { pushImage } from '../publish/push.js';
import { patchedTarget } from '../publish/tags.js';
import { collectFindings, scanLayers } from '../scan/scan.js';

export { PipelineError };
export type { PackageMirrors, PatchDependencies, PatchOptions, PatchOutcome, PkgTypes, PlatformOutcome, ProgressEvent } from './types.js';

/**
 * Files kept in memory on the first pass over the layers: configuration
 * (conffiles, apt sources, ca-certificates state), dpkg's database, keyrings.
 * Anything else read later costs a second pass over its layer.
 */
const capturedPaths = /^(etc\/|var\/lib\/dpkg\/|usr\/share\/keyrings\/|usr\/lib\/os-release$|var\/cache\/debconf\/config\.dat$)/;

/**
 * With library patching, also what the library executors read back: install
 * records, venv configs, npm manifests and lockfiles, .NET deps.json, go.mod.
 */
const capturedLibraryPaths = /(\.dist-info\/(RECORD|REQUESTED|entry_points\.txt|WHEEL)|\.egg-info\/installed-files\.txt|(^|\/)pyvenv\.cfg|(^|\/)package(-lock)?\.json|(^|\/)(yarn\.lock|pnpm-lock\.yaml)|\.deps\.json|(^|\/)go\.(mod|sum|work))$/;

/**
 * resolve → scan → plan → build → verify → publish for one reference. A
 * multi-platform index is patched per platform and re-published as an index
 * whose unpatched platforms keep their digests.
 */
export async function patchImage(deps: PatchDependencies, options: PatchOptions): Promise<PatchOutcome> {
  const { client, logger } = deps;
  options.onProgress?.({ stage: 'resolve', detail: formatReference(options.image) });
  const target = options.dryRun ? undefined : patchedTarget(options.image, { tagSuffix: options.tagSuffix, ...(options.target ? { target: options.target } : {}) });
  const resolved = await resolveImage(client, options.image);
  const { top, source } = resolved;
  const workDir = await mkdtemp(join(deps.tmpDir, 'patchd-'));
  let bytesDownloaded = 0;
  try {
    if (!resolved.index) {
      const result = await patchPlatform(deps, options, resolved.platforms[0]!, workDir);
      bytesDownloaded += result.bytesDownloaded;
      if (!result.image || !target) return summarise(options, top.digest, [result.outcome], bytesDownloaded, target);
      options.onProgress?.({ stage: 'publish', detail: formatReference(target) });
      const pushed = await pushImage({ client, source, target, image: result.image, logger });
      return summarise(options, top.digest, [{ ...result.outcome, manifestDigest: pushed.digest }], bytesDownloaded, target, pushed.digest);
    }

    // Index: patch each platform manifest (attestation manifests are left as they are).
    const outcomes: PlatformOutcome[] = [];
    const replaced = new Map<string, { digest: string; size: number; mediaType: string }>();
    for (const platform of resolved.platforms) {
      const result = await patchPlatform(deps, options, platform, workDir);
      bytesDownloaded += result.bytesDownloaded;
      if (result.image && target) {
        const pushed = await pushImage({ client, source: platform.ref, target: withDigest(target, result.image.manifestDigest()), image: result.image, logger });
        replaced.set(platform.ref.digest!, { digest: pushed.digest, size: result.image.manifestBytes().length, mediaType: result.image.manifestMediaType });
        outcomes.push({ ...result.outcome, manifestDigest: pushed.digest });
      } else {
        outcomes.push(result.outcome);
      }
    }
    if (replaced.size === 0 || !target) return summarise(options, top.digest, outcomes, bytesDownloaded, target);
    const index = patchedIndex(resolved.index, replaced, options.image, top.digest, deps.now?.() ?? new Date());
    const bytes = Buffer.from(JSON.stringify(index));
    options.onProgress?.({ stage: 'publish', detail: formatReference(target) });
    const digest = await client.putManifest(target, bytes, top.mediaType);
    return summarise(options, top.digest, outcomes, bytesDownloaded, target, digest);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function patchPlatform(
  deps: PatchDependencies,
  options: PatchOptions,
  target: PlatformTarget,
  workDir: string,
): Promise<{ outcome: PlatformOutcome; image?: Image; bytesDownloaded: number }> {
  const { logger } = deps;
  const { platform, ref } = target;
  const { manifest, image } = await target.load();
  if (image.manifest.annotations?.[Annotation.patched]) {
    throw new PipelineError('ALREADY_PATCHED', `${formatReference(ref)} is patchd output; patch its base ${image.manifest.annotations[Annotation.baseName] ?? ''}@${image.manifest.annotations[Annotation.baseDigest] ?? ''} instead`);
  }

  options.onProgress?.({ stage: 'scan', detail: platform });
  const pkgTypes = options.pkgTypes ?? { os: true, library: false };
  const capture = (p: string) => capturedPaths.test(p) || (pkgTypes.library && capturedLibraryPaths.test(p));
  const { fs, inventory } = await scanLayers(image.layers, { capture, maxCaptureBytes: 4 * 2 ** 20, logger, tmpDir: workDir });
  const advisories = options.advisories ?? {};
  const findings = collectFindings(inventory, advisories);
  const scanned = { findings, inventory: { ...(inventory.os ? { os: inventory.os } : {}), warnings: inventory.warnings, packages: inventory.packages.length } };

  options.onProgress?.({ stage: 'plan', detail: platform });
  let libraries: { upgrades: PlannedLibrary[]; skipped: SkippedPackage[] } = { upgrades: [], skipped: [] };
  if (pkgTypes.library) {
    if (!deps.libraryIndex) throw new PipelineError('LIBRARY_INDEX_MISSING', 'library patching needs a package index to check fixed versions against');
    libraries = await planLibraryUpgrades({ findings, level: options.libraryPatchLevel ?? 'patch', index: deps.libraryIndex });
    // Copa's --toolchain-patch-level: stdlib findings move a Go binary's toolchain (it is rebuilt with it).
    if (options.toolchainPatchLevel) libraries = await planGoToolchains({ findings, level: options.toolchainPatchLevel, index: deps.libraryIndex, planned: libraries });
  }
  const libraryPlan = { libraries: libraries.upgrades, skipped: libraries.skipped };
  const emptyPlan: PatchPlan = { packages: [], heldBack: [], unavailable: [], ...libraryPlan };
  const ctx: PlatformContext = { deps, options, ref, manifest, image, platform, workDir, fs, inventory, findings, advisories, scanned, emptyPlan, libraryPlan };
  const os = pkgTypes.os ? await patchOsPackages(ctx) : { outcome: { platform, ...scanned, plan: emptyPlan, skipped: 'OS packages not selected (--pkg-types)', failed: [] }, bytesDownloaded: 0 };
  const combined = libraries.upgrades.length > 0 && !options.dryRun ? await patchLibraries(ctx, os) : os;
  if (!combined.patch) return { outcome: combined.outcome, bytesDownloaded: combined.bytesDownloaded };
  const { layer, executor, summary, tool } = combined.patch;
  return {
    outcome: { ...combined.outcome, executor, layer: { digest: layer.digest, size: layer.size, diffId: layer.diffId } },
    image: withPatchLayer(deps, options, image, layer, `patchd (${executor}${tool ? `, ${tool}` : ''}): ${summary}`, ref, manifest.digest),
    bytesDownloaded: combined.bytesDownloaded,
  };
}

/** The OS step: Debian-family in-process (or BuildKit), distroless and rpm-family through BuildKit. */
async function patchOsPackages(ctx: PlatformContext): Promise<PlatformResult> {
  const { deps, options, image, platform, fs, inventory, scanned, emptyPlan, logger } = { ...ctx, logger: ctx.deps.logger };
  const users = await readUserDatabase(fs);
  const db = await DpkgDatabase.read(fs, users);
  if (!db && inventory.packages.some((p) => p.ecosystem === 'rpm')) return patchRpmPlatform(ctx);
  if (!db) {
    return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: 'no dpkg or rpm database (Debian-family packages are patched in-process, rpm-family through BuildKit)', failed: [] }, bytesDownloaded: 0 };
  }
  const repositories = await loadImageRepositories({
    fs, db, config: image.config, dispatcher: deps.dispatcher, cacheDir: deps.cacheDir, logger, ...(deps.now ? { now: deps.now() } : {}), ...(deps.mirrors?.apt ? { mirrors: deps.mirrors.apt } : {}),
  });
  if (!repositories && db.layout === 'status.d' && deps.buildkit?.toolingImages?.deb && options.executor !== 'inprocess') return patchDistrolessPlatform(ctx);
  if (!repositories) {
    const hint = db.layout === 'status.d' ? ' (a distroless image: give BuildKit a Debian tooling image, --tooling-image)' : '';
    return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `the image has no apt sources to take updates from${hint}`, failed: [] }, bytesDownloaded: 0 };
  }
  return patchDebianPlatform(ctx, { db, users, repositories });
}

function patchedIndex(index: ImageIndex, replaced: ReadonlyMap<string, { digest: string; size: number; mediaType: string }>, image: Reference, baseDigest: string, now: Date): ImageIndex {
  return {
    ...index,
    manifests: index.manifests.map((m) => {
      const r = replaced.get(m.digest);
      return r ? { ...m, digest: r.digest, size: r.size, mediaType: r.mediaType } : m;
    }),
    annotations: {
      ...(index.annotations ?? {}),
      [Annotation.baseName]: formatReference({ registry: image.registry, repository: image.repository, ...(image.tag ? { tag: image.tag } : {}) }),
      [Annotation.baseDigest]: baseDigest,
      [Annotation.created]: now.toISOString(),
      [Annotation.patched]: 'true',
    },
  };
}

function summarise(options: PatchOptions, sourceDigest: string, platforms: PlatformOutcome[], bytesDownloaded: number, target?: Reference, digest?: string): PatchOutcome {
  const status = digest ? 'patched' : options.dryRun ? 'dry-run' : 'up-to-date';
  return {
    status,
    source: formatReference(options.image),
    sourceDigest,
    platforms,
    bytesDownloaded,
    ...(digest && target ? { target: formatReference(target), digest } : {}),
  };
}

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { loadImageRepositories } from './build/deb/repository/for-image.js';
import { DpkgDatabase, readUserDatabase } from './build/deb/dpkg-database.js';
import { imageFromRegistry, type Image } from './image/mutate.js';
import { parseManifest, type ImageIndex } from './image/types.js';
import type { Logger } from './log.js';
import { readAllBytes } from './stream-bytes.js';
import type { RegistryClient } from './oci/client.js';
import { isIndexMediaType } from './oci/media-types.js';
import { formatReference, withDigest, type Reference } from './oci/reference.js';
import type { LibraryIndex } from './plan/library-index.js';
import type { LibraryPatchLevel } from './plan/library-level.js';
import { planLibraryUpgrades } from './plan/library-upgrades.js';
import type { PatchPlan, PlannedLibrary, SkippedPackage } from './plan/types.js';
import type { BuildkitClient } from './build/buildkit/client.js';
import type { Keychain } from './oci/keychain.js';
import { Annotation } from './publish/annotations.js';
import { PipelineError, type PlatformContext } from './pipeline/context.js';
import { patchDebianPlatform } from './pipeline/debian.js';
import { patchDistrolessPlatform } from './pipeline/distroless.js';
import { patchRpmPlatform } from './pipeline/rpm.js';
import { pushImage } from './publish/push.js';
import { patchedTarget } from './publish/tags.js';
import type { Inventory } from './scan/inventory/types.js';
import { collectFindings, scanLayers, type AdvisorySources } from './scan/scan.js';
import type { Finding } from './scan/types.js';

export { PipelineError };

export interface PatchDependencies {
  readonly client: RegistryClient;
  readonly dispatcher: Dispatcher;
  readonly logger: Logger;
  /** Apt index cache, shared across jobs. */
  readonly cacheDir: string;
  /** Scratch space for downloaded packages and the layer being written. */
  readonly tmpDir: string;
  readonly now?: () => Date;
  /** Where library fixes are checked to exist (PyPI, npm, Go proxy, NuGet); required for library patching. */
  readonly libraryIndex?: LibraryIndex;
  /** The BuildKit sidecar, when one is configured; its keychain answers buildkitd's credential requests. */
  readonly buildkit?: { readonly client: BuildkitClient; readonly keychain?: Keychain; readonly toolingImages?: { readonly rpm?: string; readonly deb?: string } };
}

/** Copa's --pkg-types: which kinds of package a patch may touch. */
export interface PkgTypes {
  readonly os: boolean;
  readonly library: boolean;
}

export interface PatchOptions {
  readonly image: Reference;
  /**
   * A report (Trivy JSON, Harbor's) and/or OSV advisories. Without advisory
   * data for the image's OS, every OS package with a newer version is patched.
   */
  readonly advisories?: AdvisorySources;
  /** Default: OS packages only. */
  readonly pkgTypes?: PkgTypes;
  /** Default: patch. */
  readonly libraryPatchLevel?: LibraryPatchLevel;
  /** auto (default): in-process, BuildKit for what needs maintainer scripts run; or one executor for everything. */
  readonly executor?: 'auto' | 'inprocess' | 'buildkit';
  /** `-t`: a tag or a full reference for the result. */
  readonly target?: string;
  readonly tagSuffix: string;
  readonly ignoreErrors: boolean;
  readonly dryRun: boolean;
  readonly onProgress?: (event: ProgressEvent) => void;
}

export type ProgressEvent =
  | { readonly stage: 'resolve' | 'scan' | 'plan' | 'build' | 'verify' | 'publish'; readonly detail?: string }
  | { readonly stage: 'package'; readonly phase: 'download' | 'unpack' | 'configure'; readonly pkg: string };

export interface PlatformOutcome {
  readonly platform: string;
  readonly plan?: PatchPlan;
  readonly findings?: readonly Finding[];
  readonly inventory?: Pick<Inventory, 'os' | 'warnings'> & { readonly packages: number };
  readonly skipped?: string;
  readonly failed: readonly { readonly name: string; readonly error: string }[];
  readonly layer?: { readonly digest: string; readonly size: number; readonly diffId: string };
  readonly executor?: 'inprocess' | 'buildkit';
  readonly manifestDigest?: string;
}

export interface PatchOutcome {
  readonly status: 'patched' | 'up-to-date' | 'dry-run';
  readonly source: string;
  readonly sourceDigest: string;
  readonly target?: string;
  readonly digest?: string;
  readonly platforms: readonly PlatformOutcome[];
  readonly bytesDownloaded: number;
}

/**
 * Files kept in memory on the first pass over the layers: configuration
 * (conffiles, apt sources, ca-certificates state), dpkg's database, keyrings.
 * Anything else read later costs a second pass over its layer.
 */
const capturedPaths = /^(etc\/|var\/lib\/dpkg\/|usr\/share\/keyrings\/|usr\/lib\/os-release$|var\/cache\/debconf\/config\.dat$)/;

/**
 * resolve → scan → plan → build → verify → publish for one reference. A
 * multi-platform index is patched per platform and re-published as an index
 * whose unpatched platforms keep their digests.
 */
export async function patchImage(deps: PatchDependencies, options: PatchOptions): Promise<PatchOutcome> {
  const { client, logger } = deps;
  options.onProgress?.({ stage: 'resolve', detail: formatReference(options.image) });
  const target = options.dryRun ? undefined : patchedTarget(options.image, { tagSuffix: options.tagSuffix, ...(options.target ? { target: options.target } : {}) });
  const top = await client.getManifest(options.image);
  const source = withDigest(options.image, top.digest);
  const workDir = await mkdtemp(join(deps.tmpDir, 'patchd-'));
  let bytesDownloaded = 0;
  try {
    const parsed = parseManifest(top.bytes, top.mediaType);
    if (parsed.kind === 'manifest') {
      const result = await patchPlatform(deps, options, source, top, 'single', workDir);
      bytesDownloaded += result.bytesDownloaded;
      if (!result.image || !target) return summarise(options, top.digest, [result.outcome], bytesDownloaded, target);
      options.onProgress?.({ stage: 'publish', detail: formatReference(target) });
      const pushed = await pushImage({ client, source, target, image: result.image, logger });
      return summarise(options, top.digest, [{ ...result.outcome, manifestDigest: pushed.digest }], bytesDownloaded, target, pushed.digest);
    }

    // Index: patch each platform manifest (attestation manifests are left as they are).
    const outcomes: PlatformOutcome[] = [];
    const replaced = new Map<string, { digest: string; size: number; mediaType: string }>();
    for (const child of parsed.index.manifests) {
      const platform = child.platform ? [child.platform.os, child.platform.architecture, child.platform.variant].filter(Boolean).join('/') : 'unknown';
      if (platform.startsWith('unknown') || isIndexMediaType(child.mediaType)) continue;
      const childRef = withDigest(options.image, child.digest);
      const manifest = await client.getManifest(childRef);
      const result = await patchPlatform(deps, options, childRef, manifest, platform, workDir);
      bytesDownloaded += result.bytesDownloaded;
      if (result.image && target) {
        const pushed = await pushImage({ client, source: childRef, target: withDigest(target, result.image.manifestDigest()), image: result.image, logger });
        replaced.set(child.digest, { digest: pushed.digest, size: result.image.manifestBytes().length, mediaType: result.image.manifestMediaType });
        outcomes.push({ ...result.outcome, manifestDigest: pushed.digest });
      } else {
        outcomes.push(result.outcome);
      }
    }
    if (replaced.size === 0 || !target) return summarise(options, top.digest, outcomes, bytesDownloaded, target);
    const index = patchedIndex(parsed.index, replaced, options.image, top.digest, deps.now?.() ?? new Date());
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
  ref: Reference,
  manifest: { mediaType: string; digest: string; bytes: Buffer },
  platform: string,
  workDir: string,
): Promise<{ outcome: PlatformOutcome; image?: Image; bytesDownloaded: number }> {
  const { client, logger } = deps;
  const parsed = parseManifest(manifest.bytes, manifest.mediaType);
  if (parsed.kind !== 'manifest') throw new PipelineError('MANIFEST_INVALID', `${formatReference(ref)} is a nested index`);
  const configBytes = await readAllBytes(await client.openBlob(ref, parsed.manifest.config));
  const image = imageFromRegistry({
    manifestMediaType: manifest.mediaType,
    manifestBytes: manifest.bytes,
    configBytes,
    openBlob: (desc) => client.openBlob(ref, desc),
  });
  if (image.manifest.annotations?.[Annotation.patched]) {
    throw new PipelineError('ALREADY_PATCHED', `${formatReference(ref)} is patchd output; patch its base ${image.manifest.annotations[Annotation.baseName] ?? ''}@${image.manifest.annotations[Annotation.baseDigest] ?? ''} instead`);
  }

  options.onProgress?.({ stage: 'scan', detail: platform });
  const { fs, inventory } = await scanLayers(image.layers, { capture: (p) => capturedPaths.test(p), maxCaptureBytes: 4 * 2 ** 20, logger, tmpDir: workDir });
  const advisories = options.advisories ?? {};
  const findings = collectFindings(inventory, advisories);
  const scanned = { findings, inventory: { ...(inventory.os ? { os: inventory.os } : {}), warnings: inventory.warnings, packages: inventory.packages.length } };
  const pkgTypes = options.pkgTypes ?? { os: true, library: false };

  options.onProgress?.({ stage: 'plan', detail: platform });
  let libraries: { upgrades: PlannedLibrary[]; skipped: SkippedPackage[] } = { upgrades: [], skipped: [] };
  if (pkgTypes.library) {
    if (!deps.libraryIndex) throw new PipelineError('LIBRARY_INDEX_MISSING', 'library patching needs a package index to check fixed versions against');
    libraries = await planLibraryUpgrades({ findings, level: options.libraryPatchLevel ?? 'patch', index: deps.libraryIndex });
  }
  // Language package managers (pip, npm) are to run in the BuildKit executor; patchd does not drive them there yet.
  const why = deps.buildkit ? 'library installs (pip, npm) through BuildKit are not implemented yet' : 'library upgrades need the BuildKit executor, which is not configured';
  const libraryFailures = libraries.upgrades.map((l) => ({ name: `${l.name} (${l.ecosystem})`, error: `${l.from} -> ${l.to}: ${why}` }));
  if (libraryFailures.length > 0 && !options.ignoreErrors && !options.dryRun) {
    throw new PipelineError('EXECUTOR_UNAVAILABLE', `${why}: ${libraryFailures.map((f) => f.name).join(', ')} (use --ignore-errors to patch the rest)`);
  }
  const libraryPlan = { libraries: libraries.upgrades, skipped: libraries.skipped };
  const emptyPlan: PatchPlan = { packages: [], heldBack: [], unavailable: [], ...libraryPlan };
  const failedLibraries = options.dryRun ? [] : libraryFailures;

  const users = await readUserDatabase(fs);
  const db = pkgTypes.os ? await DpkgDatabase.read(fs, users) : undefined;
  const ctx: PlatformContext = { deps, options, ref, manifest, image, platform, workDir, fs, inventory, findings, advisories, scanned, emptyPlan, libraryPlan, failedLibraries };
  if (!db && pkgTypes.os && inventory.packages.some((p) => p.ecosystem === 'rpm')) return patchRpmPlatform(ctx);
  if (!db) {
    const skipped = pkgTypes.os ? 'no dpkg or rpm database (Debian-family packages are patched in-process, rpm-family through BuildKit)' : 'OS packages not selected (--pkg-types)';
    return { outcome: { platform, ...scanned, plan: emptyPlan, skipped, failed: failedLibraries }, bytesDownloaded: 0 };
  }

  const repositories = await loadImageRepositories({ fs, db, config: image.config, dispatcher: deps.dispatcher, cacheDir: deps.cacheDir, logger, ...(deps.now ? { now: deps.now() } : {}) });
  if (!repositories && db.layout === 'status.d' && deps.buildkit?.toolingImages?.deb && options.executor !== 'inprocess') return patchDistrolessPlatform(ctx);
  if (!repositories) {
    const hint = db.layout === 'status.d' ? ' (a distroless image: give BuildKit a Debian tooling image, --tooling-image)' : '';
    return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `the image has no apt sources to take updates from${hint}`, failed: failedLibraries }, bytesDownloaded: 0 };
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

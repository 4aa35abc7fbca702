import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { loadImageRepositories } from './build/deb/repository/for-image.js';
import { DpkgDatabase, readUserDatabase } from './build/deb/dpkg-database.js';
import { DebError } from './build/deb/errors.js';
import { executeDebPlan } from './build/deb/executor.js';
import { PatchdError } from './errors.js';
import { ImageFilesystem } from './image/filesystem.js';
import type { Layer } from './image/layer.js';
import { createLayerBuilder } from './image/layer-builder.js';
import { appendLayer, imageFromRegistry, withAnnotations, withConfigCreated, type Image } from './image/mutate.js';
import { parseManifest, type ImageIndex } from './image/types.js';
import type { Logger } from './log.js';
import { readAllBytes } from './stream-bytes.js';
import type { RegistryClient } from './oci/client.js';
import { gzipLayerMediaTypeFor, isIndexMediaType } from './oci/media-types.js';
import { formatReference, withDigest, type Reference } from './oci/reference.js';
import { resolveDebUpgrades } from './plan/deb-upgrades.js';
import type { LibraryIndex } from './plan/library-index.js';
import type { LibraryPatchLevel } from './plan/library-level.js';
import { planLibraryUpgrades } from './plan/library-upgrades.js';
import { debUpgradeRequest } from './plan/os-request.js';
import type { PatchPlan, PlannedLibrary, PlannedPackage, SkippedPackage } from './plan/types.js';
import type { BuildkitClient } from './build/buildkit/client.js';
import { buildPatchLayer } from './build/buildkit/executor.js';
import { aptInstall } from './build/buildkit/strategies/apt.js';
import { patchDistrolessImage, patchRpmImage } from './build/buildkit/tooling-patch.js';
import type { BuildkitRun } from './build/buildkit/executor.js';
import type { Keychain } from './oci/keychain.js';
import { Annotation } from './publish/annotations.js';
import { pushImage } from './publish/push.js';
import { patchedTarget } from './publish/tags.js';
import type { Inventory } from './scan/inventory/types.js';
import { collectFindings, hasAdvisoryData, scanLayers, type AdvisorySources } from './scan/scan.js';
import type { Finding } from './scan/types.js';

export class PipelineError extends PatchdError {}

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
  if (!db && pkgTypes.os && inventory.packages.some((p) => p.ecosystem === 'rpm')) {
    const osPackage = inventory.packages.find((p) => p.ecosystem === 'rpm')!;
    const request = hasAdvisoryData(osPackage, inventory.os, advisories) ? findings : 'all' as const;
    if (options.executor === 'inprocess' || !deps.buildkit) {
      const why = options.executor === 'inprocess' ? 'RPM packages are installed by their package manager in the BuildKit executor, not in-process' : 'RPM packages need the BuildKit executor; no BuildKit daemon is configured (--buildkit-addr)';
      if (!options.ignoreErrors) throw new PipelineError('EXECUTOR_UNAVAILABLE', why);
      return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: why, failed: failedLibraries }, bytesDownloaded: 0 };
    }
    if (options.dryRun) {
      const what = request === 'all' ? 'every available update' : [...new Set(request.filter((f) => f.package.ecosystem === 'rpm').map((f) => f.package.name))].join(', ');
      return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `dry run: the BuildKit executor would upgrade ${what || 'nothing'} with the image's package manager`, failed: failedLibraries }, bytesDownloaded: 0 };
    }
    options.onProgress?.({ stage: 'build', detail: platform });
    const result = await patchRpmImage({
      run: buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options),
      fs, inventory, request, mediaType: gzipLayerMediaTypeFor(manifest.mediaType),
      ...(deps.buildkit.toolingImages?.rpm ? { toolingImage: deps.buildkit.toolingImages.rpm } : {}),
    });
    const rpmPlan: PatchPlan = { ...emptyPlan, upgraded: result.upgraded };
    if (!result.layer) return { outcome: { platform, ...scanned, plan: rpmPlan, failed: failedLibraries }, bytesDownloaded: 0 };
    const summary = result.upgraded.map((u) => `${u.name} ${u.from} -> ${u.to}`).join(', ');
    return {
      outcome: { platform, ...scanned, plan: rpmPlan, failed: failedLibraries, executor: 'buildkit', layer: { digest: result.layer.digest, size: result.layer.size, diffId: result.layer.diffId } },
      image: withPatchLayer(deps, options, image, result.layer, `patchd (buildkit, ${result.tool}): ${summary}`, ref, manifest.digest),
      bytesDownloaded: 0,
    };
  }
  if (!db) {
    const skipped = pkgTypes.os ? 'no dpkg or rpm database (Debian-family packages are patched in-process, rpm-family through BuildKit)' : 'OS packages not selected (--pkg-types)';
    return { outcome: { platform, ...scanned, plan: emptyPlan, skipped, failed: failedLibraries }, bytesDownloaded: 0 };
  }

  const repositories = await loadImageRepositories({ fs, db, config: image.config, dispatcher: deps.dispatcher, cacheDir: deps.cacheDir, logger, ...(deps.now ? { now: deps.now() } : {}) });
  if (!repositories && db.layout === 'status.d' && deps.buildkit?.toolingImages?.deb && options.executor !== 'inprocess') {
    // Distroless: no apt sources and no shell; a Debian tooling image's apt works on it through BuildKit.
    const osPackage = inventory.packages.find((p) => p.ecosystem === 'debian');
    const request = osPackage && hasAdvisoryData(osPackage, inventory.os, advisories) ? findings : 'all' as const;
    if (options.dryRun) {
      return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `dry run: the BuildKit executor would upgrade ${request === 'all' ? 'every package with a newer candidate' : 'the packages findings name'} with the tooling image's apt`, failed: failedLibraries }, bytesDownloaded: 0 };
    }
    options.onProgress?.({ stage: 'build', detail: platform });
    const result = await patchDistrolessImage({
      run: buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options),
      inventory, request, toolingImage: deps.buildkit.toolingImages.deb, nativeArchitecture: (await fs.readFile('var/lib/dpkg/arch'))?.toString('utf8').split('\n')[0]?.trim() || image.config.architecture,
      mediaType: gzipLayerMediaTypeFor(manifest.mediaType),
    });
    const distrolessPlan: PatchPlan = { ...emptyPlan, upgraded: result.upgraded };
    if (!result.layer) return { outcome: { platform, ...scanned, plan: distrolessPlan, failed: failedLibraries }, bytesDownloaded: 0 };
    await verifyInstalled(result.layer, result.upgraded.map((u) => ({ name: u.name, architecture: u.architecture, version: u.to })), 'status.d');
    return {
      outcome: { platform, ...scanned, plan: distrolessPlan, failed: failedLibraries, executor: 'buildkit', layer: { digest: result.layer.digest, size: result.layer.size, diffId: result.layer.diffId } },
      image: withPatchLayer(deps, options, image, result.layer, `patchd (buildkit, distroless): ${result.upgraded.map((u) => `${u.name} ${u.from} -> ${u.to}`).join(', ')}`, ref, manifest.digest),
      bytesDownloaded: 0,
    };
  }
  if (!repositories) {
    const hint = db.layout === 'status.d' ? ' (a distroless image: give BuildKit a Debian tooling image, --tooling-image)' : '';
    return { outcome: { platform, ...scanned, plan: emptyPlan, skipped: `the image has no apt sources to take updates from${hint}`, failed: failedLibraries }, bytesDownloaded: 0 };
  }
  const osPackage = inventory.packages.find((p) => p.class === 'os');
  const request = debUpgradeRequest(osPackage && hasAdvisoryData(osPackage, inventory.os, advisories) ? findings : 'all');
  const plan: PatchPlan = { ...resolveDebUpgrades({ installed: db.packages, repositories, request }), ...libraryPlan };
  logger.info({ platform, packages: plan.packages.map((p) => `${p.name} ${p.from} -> ${p.to}`), heldBack: plan.heldBack, unavailable: plan.unavailable, libraries: plan.libraries?.map((l) => `${l.name} ${l.from} -> ${l.to}`), skipped: plan.skipped }, 'plan');
  if (plan.packages.length === 0 || options.dryRun) {
    return { outcome: { platform, ...scanned, plan, failed: failedLibraries }, bytesDownloaded: repositories.stats.bytesDownloaded };
  }

  options.onProgress?.({ stage: 'build', detail: platform });
  const executor = options.executor ?? 'auto';
  if (executor === 'buildkit' && !deps.buildkit) throw new PipelineError('BUILDKIT_NOT_CONFIGURED', '--executor buildkit needs a BuildKit daemon (--buildkit-addr, or buildkit.address in the config)');
  const viaBuildkit = async (): Promise<Built> => {
    if (db.layout !== 'status') throw new PipelineError('EXECUTOR_UNSUPPORTED', 'distroless (status.d) images are not patched through BuildKit yet');
    const arch = (await fs.readFile('var/lib/dpkg/arch'))?.toString('utf8').split('\n')[0]?.trim() || image.config.architecture;
    const layer = await buildPatchLayer(
      buildkitRun(deps, ref, manifest.digest, image, workDir, logger, options),
      (base) => aptInstall(base, plan.packages.map((p) => ({ name: p.name, version: p.to, architecture: p.architecture })), arch),
      gzipLayerMediaTypeFor(manifest.mediaType),
    );
    return { layer, applied: plan.packages, failed: [], bytesDownloaded: repositories.stats.bytesDownloaded, executor: 'buildkit' };
  };
  const viaInProcess = async (ignoreErrors: boolean): Promise<Built | undefined> => {
    const builder = createLayerBuilder({ tmpDir: workDir, mediaType: gzipLayerMediaTypeFor(manifest.mediaType) });
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
      return { layer: await builder.write(), applied: result.applied, failed: result.failed, bytesDownloaded: result.bytesDownloaded, executor: 'inprocess' };
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
  const failed = [...built.failed.map((f) => ({ name: f.pkg.name, error: `${f.error.message}${f.error instanceof DebError && f.error.code === 'SCRIPTS_REQUIRED' ? noBuildkit : ''}` })), ...failedLibraries];
  if (!built.layer) {
    return { outcome: { platform, ...scanned, plan, failed, skipped: 'every planned package failed (ignoreErrors)' }, bytesDownloaded: built.bytesDownloaded };
  }
  const layer = built.layer;

  options.onProgress?.({ stage: 'verify', detail: platform });
  await verifyInstalled(layer, built.applied.map((p) => ({ name: p.name, architecture: p.architecture, version: p.to })), db.layout);

  const summary = built.applied.map((p) => `${p.name} ${p.from} -> ${p.to}`).join(', ');
  return {
    outcome: { platform, ...scanned, plan, failed, executor: built.executor, layer: { digest: layer.digest, size: layer.size, diffId: layer.diffId } },
    image: withPatchLayer(deps, options, image, layer, `patchd (${built.executor}): ${summary}`, ref, manifest.digest),
    bytesDownloaded: built.bytesDownloaded,
  };
}

function buildkitRun(deps: PatchDependencies, ref: Reference, digest: string, image: Image, workDir: string, logger: Logger, options?: PatchOptions): BuildkitRun {
  return {
    onStep: (name) => options?.onProgress?.({ stage: 'build', detail: name }),
    client: deps.buildkit!.client, ...(deps.buildkit!.keychain ? { keychain: deps.buildkit!.keychain } : {}),
    baseRef: `${ref.registry}/${ref.repository}@${digest}`,
    platform: { architecture: image.config.architecture, os: image.config.os ?? 'linux', ...(image.config.variant ? { variant: image.config.variant } : {}) },
    workDir, logger, onLog: (line) => logger.debug({ line }, 'buildkit'),
  };
}

/** The original image plus one layer, with the base recorded by digest (never stacked: see ALREADY_PATCHED). */
function withPatchLayer(deps: PatchDependencies, options: PatchOptions, image: Image, layer: Layer & { readonly diffId: string }, createdBy: string, ref: Reference, baseDigest: string): Image {
  const now = (deps.now?.() ?? new Date()).toISOString();
  let patched = appendLayer(image, layer, { created: now, created_by: createdBy, comment: 'patchd patch layer' });
  patched = withConfigCreated(patched, now);
  return withAnnotations(patched, {
    [Annotation.baseName]: formatReference({ registry: ref.registry, repository: ref.repository, ...(options.image.tag ? { tag: options.image.tag } : {}) }),
    [Annotation.baseDigest]: baseDigest,
    [Annotation.created]: now,
    [Annotation.patched]: 'true',
  });
}

interface Built {
  readonly layer?: Layer & { readonly diffId: string };
  readonly applied: readonly PlannedPackage[];
  readonly failed: readonly { readonly pkg: PlannedPackage; readonly error: Error }[];
  readonly bytesDownloaded: number;
  readonly executor: 'inprocess' | 'buildkit';
}

/** Re-reads the written layer (not our in-memory state) and checks every planned version landed. */
async function verifyInstalled(
  layer: Layer,
  expected: readonly { name: string; architecture: string; version: string }[],
  layout: 'status' | 'status.d',
): Promise<void> {
  const written = await ImageFilesystem.load([layer], { capture: (p) => p.startsWith('var/lib/dpkg/status') });
  const db = await DpkgDatabase.read(written, { uid: () => undefined, gid: () => undefined });
  if (!db) throw new DebError('VERIFY_FAILED', `the patch layer has no dpkg ${layout}`);
  for (const want of expected) {
    const got = db.get(want.name, want.architecture);
    if (got?.version !== want.version) {
      throw new DebError('VERIFY_FAILED', `${want.name}: expected ${want.version} after patching, found ${got?.version ?? 'nothing'}`);
    }
  }
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

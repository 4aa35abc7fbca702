import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadImageRepositories } from '../distro/deb/repository/for-image.js';
import { DpkgDatabase, readUserDatabase } from '../distro/deb/dpkg-database.js';
import type { Image } from '../image/mutate.js';
import { resolveImage, type PlatformTarget, type ResolvedImage } from '../image/resolve.js';
import type { ImageIndex } from '../image/types.js';
import { recordReads } from '../image/read-record.js';
import type { RegistryClient } from '../oci/client.js';
import { formatReference, withDigest, type Reference } from '../oci/reference.js';
import { planGoToolchains } from '../plan/go-toolchain.js';
import { planLibraryUpgrades } from '../plan/library-upgrades.js';
import type { PatchPlan, PlannedLibrary, SkippedPackage } from '../plan/types.js';
import { Annotation } from '../publish/annotations.js';
import { PipelineError, withPatchLayer, type PlatformContext, type PlatformResult } from './context.js';
import { patchLibraries } from './libraries.js';
import { publishEvidence } from './evidence.js';
import { signPublished } from './signature.js';
import { patchOrigin, previousPatch, previousPlatform, resolveOriginal } from './lineage.js';
import { platformFilter } from './platform-filter.js';
import type { PatchDependencies, PatchOptions, PatchOutcome, PlatformOutcome } from './types.js';
import { patchDebianPlatform } from './debian.js';
import { patchDistrolessPlatform } from './distroless.js';
import { patchRpmPlatform } from './rpm.js';
import { pushImage } from '../publish/push.js';
import { patchedTarget, publishTags } from '../publish/tags.js';
import { collectFindings, scanLayers } from '../scan/scan.js';
import { scanCacheFor } from '../scan/scan-cache.js';

export { PipelineError };
export { patchOrigin, previousPatch, resolveOriginal } from './lineage.js';
export type { PackageMirrors, PatchDependencies, PatchOptions, PatchOutcome, PkgTypes, PlatformOutcome, ProgressEvent } from './types.js';

/**
 * Files kept in memory on the first pass over the layers: configuration
 * (conffiles, apt sources, ca-certificates state), dpkg's database, keyrings,
 * pam-auth-update's profiles (libpam-runtime's scripts read them).
 * Anything else read later costs a second pass over its layer.
 */
const capturedPaths = /^(etc\/|var\/lib\/dpkg\/|usr\/share\/keyrings\/|usr\/share\/pam-configs\/|usr\/lib\/os-release$|var\/cache\/debconf\/config\.dat$)/;

/**
 * With library patching, also what the library executors read back: install
 * records, venv configs, npm manifests and lockfiles, .NET deps.json, go.mod.
 */
const capturedLibraryPaths = /(\.dist-info\/(RECORD|REQUESTED|entry_points\.txt|WHEEL)|\.egg-info\/installed-files\.txt|(^|\/)pyvenv\.cfg|(^|\/)package(-lock)?\.json|(^|\/)(yarn\.lock|pnpm-lock\.yaml)|\.deps\.json|(^|\/)go\.(mod|sum|work))$/;

/** The capture rule's name for the scan cache: changes whenever the rule does. */
function captureName(library: boolean): string {
  return createHash('sha256').update(`${capturedPaths.source}\n${library ? capturedLibraryPaths.source : ''}`).digest('hex').slice(0, 16);
}

/**
 * resolve → scan → plan → build → verify → publish for one reference. A
 * multi-platform index is patched per platform and re-published as an index
 * whose unpatched platforms keep their digests.
 *
 * Re-patching: an image patchd produced is patched from its original again
 * (its base.digest), so a patched image always has exactly one patch layer.
 * When the target tag already holds a patch of the same original (or the
 * input is one), each platform is first planned against that patch: with
 * nothing new to fix it is kept as it is, and with nothing new anywhere
 * nothing is pushed (`up-to-date`, with the reason).
 */
export async function patchImage(deps: PatchDependencies, options: PatchOptions): Promise<PatchOutcome> {
  // With a signer, cosign's signature on what was pushed (src/pipeline/signature.ts).
  const outcome = await signPublished(deps, await patchAndPush(deps, options));
  // VEX and SBOM referrers of what was pushed.
  const evidence = await publishEvidence(deps, options, outcome);
  return evidence ? { ...outcome, evidence } : outcome;
}

async function patchAndPush(deps: PatchDependencies, options: PatchOptions): Promise<PatchOutcome> {
  const { client, logger } = deps;
  options.onProgress?.({ stage: 'resolve', detail: formatReference(options.image) });
  const selected = platformFilter(options.platforms);
  const input = await resolveImage(client, options.image);
  const origin = patchOrigin(input.top);
  const { ref: image, resolved } = origin ? await resolveOriginal(client, options.image, origin) : { ref: options.image, resolved: input };
  if (origin) logger.info({ patched: formatReference(options.image), original: formatReference(image) }, 're-patching from the original');
  const patchOptions: PatchOptions = origin ? { ...options, image } : options;
  const floating = floatingTarget(options, image, origin !== undefined);
  const target = options.dryRun ? undefined : floating;
  const { top, source } = resolved;
  const previous = floating ? await previousPatchFor(client, floating, top.digest, origin ? input : undefined) : undefined;
  const workDir = await mkdtemp(join(deps.tmpDir, 'patchd-'));
  let bytesDownloaded = 0;
  const report = (platforms: PlatformOutcome[], published?: { digest: string; tags: readonly Reference[]; floatingRefused?: string }, reason?: string, current?: PatchOutcome['current']) =>
    summarise(options, top.digest, platforms, bytesDownloaded, published, reason, current);
  try {
    const outcomes: PlatformOutcome[] = [];
    /** Platform manifest digests of the original → what the patched index lists instead. */
    const replaced = new Map<string, { digest: string; size: number; mediaType: string }>();
    let single: Image | undefined;
    let kept = 0;
    let patched = 0;
    for (const platform of resolved.platforms) {
      const before = previous ? previousPlatform(previous, platform.platform) : undefined;
      const beforeEntry = before && before.ref.digest !== platform.ref.digest ? entryOf(previous!, before) : undefined;
      const keep = (outcome: PlatformOutcome) => {
        outcomes.push({ ...outcome, manifestDigest: beforeEntry!.digest });
        replaced.set(platform.ref.digest!, beforeEntry!);
        kept++;
      };
      // As Copa, --platform selects among an index's platforms; a single-platform image is patched (the CLI says the flag did not apply).
      if (selected && resolved.index && !selected(platform.platform)) {
        // Copa's --platform: the others stay as they are (as the previous patch has them, when there is one).
        const skipped = { platform: platform.platform, skipped: 'platform not selected (--platform)', failed: [] };
        if (beforeEntry) { outcomes.push({ ...skipped, manifestDigest: beforeEntry.digest }); replaced.set(platform.ref.digest!, beforeEntry); } else outcomes.push(skipped);
        continue;
      }
      let decided = false;
      if (beforeEntry) {
        // Planned against the previous patch: what would still be fixed is what is new.
        const check = await patchPlatform(deps, { ...patchOptions, dryRun: true }, before!, workDir);
        bytesDownloaded += check.bytesDownloaded;
        decided = planDecides(check.outcome);
        if (decided && nothingToDo(check.outcome)) { keep({ ...check.outcome, skipped: upToDate(floating!) }); continue; }
      }
      const result = await patchPlatform(deps, patchOptions, platform, workDir);
      bytesDownloaded += result.bytesDownloaded;
      // A BuildKit-only path cannot plan ahead: the same upgrades as the previous patch layer are nothing new.
      if (result.image && beforeEntry && !decided && lastHistory(result.image) === lastHistory((await before!.load()).image)) {
        keep({ ...result.outcome, skipped: upToDate(floating!) });
        continue;
      }
      if (!result.image || !target) { outcomes.push(result.outcome); continue; }
      if (!resolved.index) { single = result.image; outcomes.push(result.outcome); continue; }
      await options.beforePublish?.();
      const pushed = await pushImage({ client, source: platform.ref, target: withDigest(target, result.image.manifestDigest()), image: result.image, logger });
      replaced.set(platform.ref.digest!, { digest: pushed.digest, size: result.image.manifestBytes().length, mediaType: result.image.manifestMediaType });
      outcomes.push({ ...result.outcome, manifestDigest: pushed.digest });
      patched++;
    }

    const changed = single !== undefined || patched > 0;
    if (!changed || !target) {
      const current = kept > 0 && floating && previous ? { target: formatReference(floating), digest: previous.top.digest } : undefined;
      return report(outcomes, undefined, current ? upToDate(floating!) : undefined, current);
    }
    options.onProgress?.({ stage: 'publish', detail: formatReference(target) });
    await options.beforePublish?.();
    if (single) {
      await pushImage({ client, source, target: withDigest(target, single.manifestDigest()), image: single, logger });
      const published = await publishTags(client, target, { bytes: single.manifestBytes(), mediaType: single.manifestMediaType }, options.tagScheme);
      return report(outcomes.map((o) => ({ ...o, manifestDigest: published.digest })), published);
    }
    const index = patchedIndex(resolved.index!, replaced, image, top.digest, deps.now?.() ?? new Date());
    const published = await publishTags(client, target, { bytes: Buffer.from(JSON.stringify(index)), mediaType: top.mediaType }, options.tagScheme);
    return report(outcomes, published);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The floating tag the result goes under: `-t`, else `<tag><suffix>` of the
 * image, or of its original's tag when re-patching an image patched in the
 * same repository (`main-patched` is re-patched to `main-patched`, not
 * `main-patched-patched`). Undefined for a dry run with no tag to derive from.
 */
function floatingTarget(options: PatchOptions, original: Reference, repatching: boolean): Reference | undefined {
  const sameRepository = original.registry === options.image.registry && original.repository === options.image.repository;
  // A patched image named by digest alone (a platform of a patched index, say) names no tag to update: -t, as for any digest.
  const from = repatching && original.tag && options.image.tag && sameRepository ? original : options.image;
  try {
    return patchedTarget(from, { tagSuffix: options.tagSuffix, ...(options.target ? { target: options.target } : {}) });
  } catch (error) {
    if (options.dryRun) return undefined;
    throw error;
  }
}

/**
 * The previous patch a re-patch is compared with and may keep platforms of:
 * the patched image given as input, else what the target tag holds when it
 * is a patch of the same original. Only one in the target's repository
 * counts (its platform manifests are listed by the new index).
 */
async function previousPatchFor(client: RegistryClient, target: Reference, originalDigest: string, input: ResolvedImage | undefined): Promise<ResolvedImage | undefined> {
  const previous = input ?? await previousPatch(client, target, originalDigest);
  return previous && previous.source.registry === target.registry && previous.source.repository === target.repository ? previous : undefined;
}

/** The descriptor the previous patch's index (or the previous patch itself) has for a platform. */
function entryOf(previous: ResolvedImage, platform: PlatformTarget): { digest: string; size: number; mediaType: string } {
  const entry = previous.index?.manifests.find((m) => m.digest === platform.ref.digest);
  return entry ? { digest: entry.digest, size: entry.size, mediaType: entry.mediaType } : { digest: previous.top.digest, size: previous.top.bytes.length, mediaType: previous.top.mediaType };
}

/** A dry run's plan says what would be installed, except where BuildKit alone decides (rpm, distroless). */
function planDecides(outcome: PlatformOutcome): boolean {
  return !outcome.skipped?.startsWith('dry run:');
}

function nothingToDo(outcome: PlatformOutcome): boolean {
  return (outcome.plan?.packages.length ?? 0) === 0 && (outcome.plan?.libraries?.length ?? 0) === 0;
}

function lastHistory(image: Image): string | undefined {
  return image.config.history?.at(-1)?.created_by;
}

const upToDate = (target: Reference) => `up to date: ${formatReference(target)} already has every fix`;

async function patchPlatform(
  deps: PatchDependencies,
  options: PatchOptions,
  target: PlatformTarget,
  workDir: string,
): Promise<{ outcome: PlatformOutcome; image?: Image; bytesDownloaded: number }> {
  const { logger } = deps;
  const { platform, ref } = target;
  const { manifest, image } = await target.load();

  options.onProgress?.({ stage: 'scan', detail: platform });
  const pkgTypes = options.pkgTypes ?? { os: true, library: false };
  const capture = (p: string) => capturedPaths.test(p) || (pkgTypes.library && capturedLibraryPaths.test(p));
  const scan = await scanLayers(image.layers, {
    capture, maxCaptureBytes: 4 * 2 ** 20, logger, tmpDir: workDir,
    cache: { store: scanCacheFor(deps.cacheDir, logger), capture: captureName(pkgTypes.library) },
  });
  const { fs, reads } = recordReads(scan.fs);
  const { inventory } = scan;
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
  const ctx: PlatformContext = { deps, options, ref, manifest, image, platform, workDir, fs, reads, inventory, findings, advisories, scanned, emptyPlan, libraryPlan };
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

function summarise(options: PatchOptions, sourceDigest: string, platforms: PlatformOutcome[], bytesDownloaded: number, published?: { digest: string; tags: readonly Reference[]; floatingRefused?: string }, reason?: string, current?: PatchOutcome['current']): PatchOutcome {
  const status = published ? 'patched' : options.dryRun ? 'dry-run' : 'up-to-date';
  return {
    status,
    source: formatReference(options.image),
    sourceDigest,
    platforms,
    bytesDownloaded,
    ...(published ? { target: formatReference(published.tags[0]!), digest: published.digest, tags: published.tags.map((t) => formatReference(t)) } : {}),
    ...(reason ? { reason } : {}),
    ...(current ? { current } : {}),
    ...(published?.floatingRefused ? { notes: [`${published.floatingRefused}; the result is ${formatReference(published.tags[0]!)}`] } : {}),
  };
}

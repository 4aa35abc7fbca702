import type { BuildkitRun } from '../executors/buildkit/executor.js';
import { DpkgDatabase } from '../distro/deb/dpkg-database.js';
import { DebError } from '../distro/deb/errors.js';
import { codedError, type ErrorCodes } from '../lib/errors.js';
import { ImageFilesystem } from '../image/filesystem.js';
import type { DecompressLimits, Layer } from '../image/layer.js';
import type { Readable } from 'node:stream';
import { MediaType } from '../oci/media-types.js';
import type { RecordedRead } from '../image/read-record.js';
import { appendLayer, withAnnotations, withConfigCreated, type Image } from '../image/mutate.js';
import type { Logger } from '../lib/log.js';
import { formatReference, type Reference } from '../oci/reference.js';
import type { PatchPlan, PlannedLibrary, SkippedPackage } from '../plan/types.js';
import { Annotation } from '../publish/annotations.js';
import type { Inventory } from '../scan/inventory/types.js';
import type { AdvisorySources } from '../scan/scan.js';
import type { Finding } from '../scan/types.js';
import type { PatchDependencies, PatchOptions, PlatformOutcome } from './types.js';

/** Decisions of the pipeline itself: what it will not or cannot patch. */
export const pipelineCodes = {
  /** patchd output without the base.digest that names its original (re-patching starts from the original). */
  ORIGINAL_UNKNOWN: 'input',
  /** The original a patched image names is gone from the registry. */
  ORIGINAL_MISSING: 'upstream',
  PLATFORM_INVALID: 'input',
  BUILDKIT_NOT_CONFIGURED: 'unsupported',
  EXECUTOR_UNAVAILABLE: 'unsupported',
  EXECUTOR_UNSUPPORTED: 'unsupported',
  LIBRARY_INDEX_MISSING: 'unsupported',
  /** A library install failed in a way its executor did not classify. */
  LIBRARY_FAILED: 'upstream',
  /** The patched image does not hold what the plan installed: a fault of ours. */
  VERIFY_FAILED: 'internal',
} as const satisfies ErrorCodes;
export type PipelineCode = keyof typeof pipelineCodes;

export class PipelineError extends codedError(pipelineCodes) {}

/** What every per-family patch path of one platform shares: the image, its scan, and the plan so far. */
export interface PlatformContext {
  readonly deps: PatchDependencies;
  readonly options: PatchOptions;
  readonly ref: Reference;
  readonly manifest: { readonly mediaType: string; readonly digest: string; readonly bytes: Buffer };
  readonly image: Image;
  readonly platform: string;
  readonly workDir: string;
  /** The merged view; reads through it are recorded (a reused patch layer must answer them the same: patch-layer-cache.ts). */
  readonly fs: ImageFilesystem;
  /** The reads of `fs` so far, with their answers. */
  readonly reads: () => readonly RecordedRead[];
  readonly inventory: Inventory;
  readonly findings: readonly Finding[];
  readonly advisories: AdvisorySources;
  readonly scanned: Pick<PlatformOutcome, 'findings' | 'inventory'>;
  /** The library part of the plan, for paths that patch no OS packages. */
  readonly emptyPlan: PatchPlan;
  readonly libraryPlan: { readonly libraries: readonly PlannedLibrary[]; readonly skipped: readonly SkippedPackage[] };
}

/** A patch layer one step produced, and how to describe it in the image's history. */
export interface PatchLayer {
  readonly layer: Layer & { readonly diffId: string };
  /** 'tzdata 2024a-0+deb12u1 -> 2025b-0+deb12u1, ...' */
  readonly summary: string;
  /** How BuildKit did it, when not plainly ('dnf', 'distroless'): shown beside the executor in the history entry. */
  readonly tool?: string;
  readonly executor: 'inprocess' | 'buildkit';
}

/** What the OS step of one platform did: its outcome, and the layer it made (if any). */
export interface PlatformResult { readonly outcome: PlatformOutcome; readonly patch?: PatchLayer; readonly bytesDownloaded: number }

export function buildkitRun(deps: PatchDependencies, ref: Reference, digest: string, image: Image, workDir: string, logger: Logger, options?: PatchOptions): BuildkitRun {
  return {
    onStep: (name) => options?.onProgress?.({ stage: 'build', detail: name }),
    client: deps.buildkit!.client, ...(deps.buildkit!.keychain ? { keychain: deps.buildkit!.keychain } : {}),
    baseRef: `${ref.registry}/${ref.repository}@${digest}`,
    platform: { architecture: image.config.architecture, os: image.config.os ?? 'linux', ...(image.config.variant ? { variant: image.config.variant } : {}) },
    workDir, logger, onLog: (line) => logger.debug({ line }, 'buildkit'),
  };
}

/** The original image plus one layer, with the base recorded by digest (never stacked: a re-patch starts from the original again, see lineage.ts). */
export function withPatchLayer(deps: PatchDependencies, options: PatchOptions, image: Image, layer: Layer & { readonly diffId: string }, createdBy: string, ref: Reference, baseDigest: string): Image {
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

/** Re-reads the written layer (not our in-memory state) and checks every planned version landed. */
/** verifyInstalled on the tar bytes of a layer being written (LayerBuilder.write's readBack). */
export function verifyWritten(expected: readonly { name: string; architecture: string; version: string }[], layout: 'status' | 'status.d'): (tar: Readable) => Promise<void> {
  // Our own output, read as it is written: no bomb limits to apply.
  return (tar) => verifyInstalled({ mediaType: MediaType.ociLayerTar, digest: 'the patch layer being written', size: 0, open: async () => tar }, expected, layout, { maxBytes: Number.MAX_SAFE_INTEGER });
}

export async function verifyInstalled(
  layer: Layer,
  expected: readonly { name: string; architecture: string; version: string }[],
  layout: 'status' | 'status.d',
  limits?: DecompressLimits,
): Promise<void> {
  const written = await ImageFilesystem.load([layer], { capture: (p) => p.startsWith('var/lib/dpkg/status'), ...(limits ? { limits } : {}) });
  const db = await DpkgDatabase.read(written, { uid: () => undefined, gid: () => undefined });
  if (!db) throw new DebError('VERIFY_FAILED', `the patch layer has no dpkg ${layout}`);
  for (const want of expected) {
    const got = db.get(want.name, want.architecture);
    if (got?.version !== want.version) {
      throw new DebError('VERIFY_FAILED', `${want.name}: expected ${want.version} after patching, found ${got?.version ?? 'nothing'}`);
    }
  }
}

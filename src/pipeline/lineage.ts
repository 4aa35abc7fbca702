import { resolveImage, type PlatformTarget, type ResolvedImage } from '../image/resolve.js';
import { parseManifest } from '../image/types.js';
import type { ManifestResponse, RegistryClient } from '../oci/client.js';
import { OciError } from '../oci/errors.js';
import { formatReference, parseReference, withDigest, withTag, type Reference } from '../oci/reference.js';
import { Annotation } from '../publish/annotations.js';
import { PipelineError } from './context.js';

/** What patchd wrote on a manifest or index it pushed: where its original is. */
export interface PatchOrigin {
  /** `org.opencontainers.image.base.name`: the original as it was named when patched (repository and tag). */
  readonly baseName?: string;
  /** `org.opencontainers.image.base.digest`: the original's manifest or index. */
  readonly baseDigest: string;
}

/** The origin recorded on patchd output; undefined for any other image. */
export function patchOrigin(top: Pick<ManifestResponse, 'bytes' | 'mediaType'>): PatchOrigin | undefined {
  const parsed = parseManifest(top.bytes, top.mediaType);
  const annotations = (parsed.kind === 'manifest' ? parsed.manifest.annotations : parsed.index.annotations) ?? {};
  if (annotations[Annotation.patched] !== 'true') return undefined;
  const baseDigest = annotations[Annotation.baseDigest];
  if (!baseDigest) throw new PipelineError('ORIGINAL_UNKNOWN', `the image is patchd output but names no ${Annotation.baseDigest}: patch its original instead`);
  return { baseDigest, ...(annotations[Annotation.baseName] ? { baseName: annotations[Annotation.baseName] } : {}) };
}

/**
 * The original of a patched image, by digest: from the repository its
 * base.name names, else from the patched image's own repository (an image
 * copied elsewhere with its original). Returns the original named as it was
 * (base.name's tag) so the patched tag is derived from it again.
 */
export async function resolveOriginal(client: RegistryClient, patched: Reference, origin: PatchOrigin): Promise<{ readonly ref: Reference; readonly resolved: ResolvedImage }> {
  const named = origin.baseName ? safeParse(origin.baseName) : undefined;
  const candidates = [named, { registry: patched.registry, repository: patched.repository }]
    .filter((r): r is Reference => r !== undefined)
    .filter((r, i, all) => all.findIndex((o) => o.registry === r.registry && o.repository === r.repository) === i);
  for (const candidate of candidates) {
    const ref: Reference = { ...withDigest(candidate, origin.baseDigest), ...(candidate.tag ? { tag: candidate.tag } : {}) };
    try {
      const resolved = await resolveImage(client, ref);
      if (patchOrigin(resolved.top)) throw new PipelineError('ORIGINAL_UNKNOWN', `${formatReference(ref)}, the original of ${formatReference(patched)}, is itself patchd output`);
      return { ref, resolved };
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
  throw new PipelineError('ORIGINAL_MISSING', `the original of ${formatReference(patched)} (${origin.baseName ?? 'unnamed'}@${origin.baseDigest}) is no longer in ${candidates.map((c) => `${c.registry}/${c.repository}`).join(' or ')}: push it again, or patch a current image`);
}

/**
 * The patch of `originalDigest` that `target` holds now, if it holds one:
 * what a re-patch compares its plan with (and replaces). Anything else
 * under the tag (nothing, another original's patch, a foreign image) is
 * no previous patch.
 */
export async function previousPatch(client: RegistryClient, target: Reference, originalDigest: string): Promise<ResolvedImage | undefined> {
  let resolved: ResolvedImage;
  try {
    resolved = await resolveImage(client, withTag(target, target.tag!));
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  // A foreign image under the tag, even one with a half-written patchd marker, is simply no previous patch.
  const origin = (() => { try { return patchOrigin(resolved.top); } catch { return undefined; } })();
  return origin?.baseDigest === originalDigest ? resolved : undefined;
}

/** The previous patch's image for one platform of the original (by platform name; a single manifest for a single manifest). */
export function previousPlatform(previous: ResolvedImage, platform: string): PlatformTarget | undefined {
  if (!previous.index) return platform === 'single' ? previous.platforms[0] : undefined;
  return previous.platforms.find((p) => p.platform === platform);
}

function isMissing(error: unknown): boolean {
  return error instanceof OciError && (error.status === 404 || error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN');
}

function safeParse(name: string): Reference | undefined {
  try { return parseReference(name); } catch { return undefined; }
}

import { readAllBytes } from '../lib/streams.js';
import type { ManifestResponse, RegistryClient } from '../oci/client.js';
import { isIndexMediaType } from '../oci/media-types.js';
import { formatReference, withDigest, type Reference } from '../oci/reference.js';
import { ImageError } from './errors.js';
import { imageFromRegistry, type Image } from './mutate.js';
import { parseManifest, type ImageIndex } from './types.js';

/** One platform's image of a resolved reference; its config is read only when `load()` is called. */
export interface PlatformTarget {
  /** 'linux/arm64/v8' for an index entry; 'single' for a reference that names a manifest. */
  readonly platform: string;
  /** This platform's manifest, by digest. */
  readonly ref: Reference;
  /** The manifest as the registry served it (digest-verified). */
  load(): Promise<{ readonly manifest: ManifestResponse; readonly image: Image }>;
}

export interface ResolvedImage {
  /** The manifest or index the reference names, digest-verified. */
  readonly top: ManifestResponse;
  /** The reference pinned to `top`'s digest. */
  readonly source: Reference;
  /** Set when the reference names an index (or Docker manifest list). */
  readonly index?: ImageIndex;
  /** Every platform image to work on, in index order; entries without a platform (attestations) and nested indexes are left out. */
  readonly platforms: readonly PlatformTarget[];
}

/**
 * The resolve step shared by patch and scan: a reference to its manifest or
 * index, and that to per-platform images. Platform manifests are fetched
 * one at a time, on `load()`, so a large index costs nothing up front.
 */
export async function resolveImage(client: RegistryClient, image: Reference): Promise<ResolvedImage> {
  const top = await client.getManifest(image);
  const source = withDigest(image, top.digest);
  const parsed = parseManifest(top.bytes, top.mediaType);
  if (parsed.kind === 'manifest') {
    return { top, source, platforms: [{ platform: 'single', ref: source, load: async () => ({ manifest: top, image: await loadImage(client, source, top) }) }] };
  }
  const platforms: PlatformTarget[] = [];
  for (const child of parsed.index.manifests) {
    const platform = child.platform ? [child.platform.os, child.platform.architecture, child.platform.variant].filter(Boolean).join('/') : 'unknown';
    if (platform.startsWith('unknown') || isIndexMediaType(child.mediaType)) continue;
    const ref = withDigest(image, child.digest);
    platforms.push({
      platform, ref,
      load: async () => {
        const manifest = await client.getManifest(ref);
        return { manifest, image: await loadImage(client, ref, manifest) };
      },
    });
  }
  return { top, source, index: parsed.index, platforms };
}

/** An image value over the registry's blobs: the config is read now, layers when opened. */
async function loadImage(client: RegistryClient, ref: Reference, manifest: ManifestResponse): Promise<Image> {
  const parsed = parseManifest(manifest.bytes, manifest.mediaType);
  if (parsed.kind !== 'manifest') throw new ImageError('MANIFEST_INVALID', `${formatReference(ref)} is an index inside an index`);
  const configBytes = await readAllBytes(await client.openBlob(ref, parsed.manifest.config));
  return imageFromRegistry({
    manifestMediaType: manifest.mediaType,
    manifestBytes: manifest.bytes,
    configBytes,
    openBlob: (desc) => client.openBlob(ref, desc),
  });
}

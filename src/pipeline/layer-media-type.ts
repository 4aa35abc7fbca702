import { codedError, type ErrorCodes } from '../lib/errors.js';
import { gzipLayerMediaTypeFor, MediaType, type LayerCompression } from '../oci/media-types.js';

export const compressionCodes = {
  /** zstd patch layers are written under OCI manifests only. */
  COMPRESSION_UNSUPPORTED: 'unsupported',
} as const satisfies ErrorCodes;

export class CompressionError extends codedError(compressionCodes) {}

/**
 * The patch layer's media type: the manifest's family (Docker images keep
 * Docker layer types) with the compression asked for, gzip by default. Docker
 * schema 2 has no zstd layer type Docker itself pulls (BuildKit's `tar.zstd`
 * label fails in Docker), so zstd under a Docker manifest is refused rather than written.
 */
export function patchLayerMediaType(manifestMediaType: string, compression: LayerCompression = 'gzip'): string {
  if (compression === 'gzip') return gzipLayerMediaTypeFor(manifestMediaType);
  if (manifestMediaType !== MediaType.ociManifest) {
    throw new CompressionError('COMPRESSION_UNSUPPORTED', `zstd patch layers need an OCI image manifest; this image's manifest is ${manifestMediaType} (use gzip, or convert the image to OCI media types first, e.g. skopeo copy --format oci)`);
  }
  return MediaType.ociLayerZstd;
}

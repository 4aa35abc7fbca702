import { Readable } from 'node:stream';
import type { Descriptor } from '../image/types.js';
import type { Image } from '../image/mutate.js';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
import { OciError } from '../oci/errors.js';
import type { Reference } from '../oci/reference.js';

export interface PushResult {
  readonly digest: string;
  readonly blobs: { readonly uploaded: number; readonly mounted: number; readonly existing: number };
}

/**
 * Pushes an image: blobs the target lacks (the patch layer and new config in
 * the common case, mounted from the source repository when it differs), then
 * the manifest by tag. Base layers are never re-encoded.
 */
export async function pushImage(args: {
  readonly client: RegistryClient;
  readonly source: Reference;
  readonly target: Reference;
  readonly image: Image;
  readonly logger: Logger;
}): Promise<PushResult> {
  const { client, source, target, image, logger } = args;
  const counts = { uploaded: 0, mounted: 0, existing: 0 };
  const sameRegistry = source.registry === target.registry;
  const mountFrom = sameRegistry && source.repository !== target.repository ? source.repository : undefined;

  const config = image.configDescriptor();
  const blobs: { desc: Descriptor; open: () => Promise<Readable> }[] = [
    ...image.layers.map((layer) => ({ desc: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size } as Descriptor, open: () => layer.open() })),
    { desc: config, open: async () => Readable.from([image.configBytes()]) },
  ];
  for (let attempt = 1; ; attempt++) {
    counts.uploaded = counts.mounted = counts.existing = 0;
    for (const { desc, open } of blobs) {
      const outcome = await client.pushBlob(target, { digest: desc.digest, size: desc.size }, open, mountFrom ? { mountFrom } : undefined);
      counts[outcome === 'uploaded' ? 'uploaded' : outcome === 'mounted' ? 'mounted' : 'existing']++;
      logger.debug({ digest: desc.digest, outcome }, 'blob');
    }
    try {
      return { digest: await client.putManifest(target, image.manifestBytes(), image.manifestMediaType), blobs: counts };
    } catch (error) {
      if (!blobNotSeenYet(error)) throw error;
      // docker-registry 2.8 refuses a manifest whose blob another push into the same repository is writing at that moment
      // (400 DIGEST_INVALID / MANIFEST_BLOB_UNKNOWN): every blob is checked (and pushed) again, then the manifest.
      if (attempt < manifestAttempts) {
        logger.warn({ target: target.repository, attempt, err: (error as Error).message }, 'the registry did not see a blob just pushed; pushing again');
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
        continue;
      }
      throw new OciError(error.code, `${error.message} (after ${attempt} attempts: a blob pushed moments ago was still unknown to the registry)`, { kind: 'unavailable', cause: error });
    }
  }
}

const manifestAttempts = 3;

function blobNotSeenYet(error: unknown): error is OciError {
  if (!(error instanceof OciError)) return false;
  const codes = [error.code, ...((error.details?.['errors'] as { code?: string }[] | undefined) ?? []).map((e) => e.code)];
  return codes.includes('MANIFEST_BLOB_UNKNOWN') || codes.includes('BLOB_UNKNOWN');
}

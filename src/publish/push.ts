import { Readable } from 'node:stream';
import type { Descriptor } from '../image/types.js';
import type { Image } from '../image/mutate.js';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
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
  for (const { desc, open } of blobs) {
    const outcome = await client.pushBlob(target, { digest: desc.digest, size: desc.size }, open, mountFrom ? { mountFrom } : undefined);
    counts[outcome === 'uploaded' ? 'uploaded' : outcome === 'mounted' ? 'mounted' : 'existing']++;
    logger.debug({ digest: desc.digest, outcome }, 'blob');
  }
  const digest = await client.putManifest(target, image.manifestBytes(), image.manifestMediaType);
  return { digest, blobs: counts };
}

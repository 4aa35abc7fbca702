import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isIndexMediaType } from '../oci/media-types.js';
import { ImageError, type ImageCode } from './errors.js';

const digest = z.string().regex(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, 'not a digest');
const annotations = z.record(z.string(), z.string());

export const PlatformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
});

export const DescriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest,
  size: z.number().int().nonnegative(),
  annotations: annotations.optional(),
  platform: PlatformSchema.optional(),
  artifactType: z.string().optional(),
});

export const ImageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: annotations.optional(),
});

export const ImageIndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: annotations.optional(),
});

export const HistoryEntrySchema = z.looseObject({
  created: z.string().optional(),
  created_by: z.string().optional(),
  author: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});

export const ImageConfigSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  created: z.string().optional(),
  config: z.looseObject({}).optional(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  history: z.array(HistoryEntrySchema).optional(),
});

export type Platform = z.infer<typeof PlatformSchema>;
export type Descriptor = z.infer<typeof DescriptorSchema>;
export type ImageManifest = z.infer<typeof ImageManifestSchema>;
export type ImageIndex = z.infer<typeof ImageIndexSchema>;
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>;
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

export type ParsedManifest = { kind: 'index'; index: ImageIndex } | { kind: 'manifest'; manifest: ImageManifest };

export function parseManifest(bytes: Buffer, mediaType: string): ParsedManifest {
  const json = parseJson(bytes, 'MANIFEST_INVALID', 'manifest');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ImageError('MANIFEST_INVALID', `a manifest is a JSON object, not ${json === null ? 'null' : Array.isArray(json) ? 'an array' : `a ${typeof json}`}`);
  const declared = (json as { mediaType?: unknown }).mediaType;
  const index = isIndexMediaType(mediaType) || (typeof declared === 'string' && isIndexMediaType(declared))
    || (declared === undefined && Array.isArray((json as { manifests?: unknown }).manifests));
  if (index) {
    const parsed = ImageIndexSchema.safeParse(json);
    if (!parsed.success) throw new ImageError('MANIFEST_INVALID', `invalid image index: ${z.prettifyError(parsed.error)}`);
    return { kind: 'index', index: parsed.data };
  }
  const parsed = ImageManifestSchema.safeParse(json);
  if (!parsed.success) throw new ImageError('MANIFEST_INVALID', `invalid image manifest: ${z.prettifyError(parsed.error)}`);
  return { kind: 'manifest', manifest: parsed.data };
}

export function parseConfig(bytes: Buffer): ImageConfig {
  const parsed = ImageConfigSchema.safeParse(parseJson(bytes, 'CONFIG_INVALID', 'image config'));
  if (!parsed.success) throw new ImageError('CONFIG_INVALID', `invalid image config: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function parseJson(bytes: Buffer, code: ImageCode, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new ImageError(code, `${what} is not JSON: ${(error as Error).message}`, { cause: error });
  }
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

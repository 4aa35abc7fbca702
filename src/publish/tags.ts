import type { RegistryClient } from '../oci/client.js';
import { OciError } from '../oci/errors.js';
import { formatReference, parseReference, withTag, type Reference } from '../oci/reference.js';
import { codedError, type ErrorCodes } from '../lib/errors.js';

export const publishCodes = {
  TARGET_INVALID: 'input',
  /** The registry refuses to move an existing tag (Harbor immutability rules, ECR/ACR immutable or locked tags). */
  TAG_IMMUTABLE: 'upstream',
} as const satisfies ErrorCodes;
export type PublishCode = keyof typeof publishCodes;

export class PublishError extends codedError(publishCodes) {}

/**
 * How patched images are tagged (a registry's `policy.tagScheme`):
 * floating: `<tag><suffix>`, moved on every re-patch; incremental: a new
 * `<tag><suffix>-N` each time, and the floating tag moved to it too (ACR's
 * continuous patching scheme).
 */
export type TagScheme = 'floating' | 'incremental';

const tagPattern = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Where the patched image goes: `-t` as a bare tag (same repository) or a
 * full reference; otherwise `<tag><suffix>`. Digest-only sources need -t.
 * This is the floating tag; the incremental scheme numbers it at push time.
 */
export function patchedTarget(source: Reference, options: { readonly target?: string; readonly tagSuffix: string }): Reference {
  if (options.target) {
    if (tagPattern.test(options.target)) return withTag(source, options.target);
    const ref = parseReference(options.target);
    if (!ref.tag) throw new PublishError('TARGET_INVALID', `target ${options.target} names no tag`);
    return ref;
  }
  if (!source.tag) throw new PublishError('TARGET_INVALID', 'the source image has no tag to derive the patched tag from: pass -t');
  const tag = `${source.tag}${options.tagSuffix}`;
  if (!tagPattern.test(tag)) throw new PublishError('TARGET_INVALID', `"${tag}" is not a valid tag`);
  return withTag(source, tag);
}

/** `<floating>-N` with N one more than the highest among `existing` (1 when there is none). */
export function nextIncrementalTag(floating: Reference, existing: readonly string[]): Reference {
  const base = floating.tag!;
  const numbered = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`);
  const highest = existing.reduce((max, tag) => Math.max(max, Number(numbered.exec(tag)?.[1] ?? 0)), 0);
  const tag = `${base}-${highest + 1}`;
  if (!tagPattern.test(tag)) throw new PublishError('TARGET_INVALID', `"${tag}" is not a valid tag`);
  return withTag(floating, tag);
}

/**
 * Puts an already pushed manifest (its blobs, or its platform manifests, are
 * in the repository) under the tags of the scheme: the floating tag, or the
 * next `-N` and then the floating tag. Returns the tags written, the one
 * naming this patch first. Incremental on a registry whose floating tag is
 * immutable: the `-N` tag is the result, and `floatingRefused` says why the
 * floating tag still names an older patch.
 */
export async function publishTags(
  client: RegistryClient,
  floating: Reference,
  manifest: { readonly bytes: Buffer; readonly mediaType: string },
  scheme: TagScheme = 'floating',
): Promise<{ readonly tags: readonly Reference[]; readonly digest: string; readonly floatingRefused?: string }> {
  if (scheme === 'floating') return { tags: [floating], digest: await putTag(client, floating, manifest) };
  const numbered = nextIncrementalTag(floating, await client.listTags(floating));
  const digest = await putTag(client, numbered, manifest);
  try {
    await putTag(client, floating, manifest);
  } catch (error) {
    if (error instanceof PublishError && error.code === 'TAG_IMMUTABLE') return { tags: [numbered], digest, floatingRefused: error.message };
    throw error;
  }
  return { tags: [numbered, floating], digest };
}

async function putTag(client: RegistryClient, tag: Reference, manifest: { readonly bytes: Buffer; readonly mediaType: string }): Promise<string> {
  try {
    return await client.putManifest(tag, manifest.bytes, manifest.mediaType);
  } catch (error) {
    if (isTagRefusal(error)) {
      throw new PublishError('TAG_IMMUTABLE', `tag ${tag.tag} is immutable in ${tag.registry}/${tag.repository} (${(error as Error).message}): use tagScheme incremental or allow overwriting ${tag.tag} tags`, { cause: error });
    }
    throw error;
  }
}

/**
 * How registries refuse to move a tag: Harbor's immutability rule answers 412
 * ("… configured as immutable"), ECR 400 TAG_INVALID ("… cannot be
 * overwritten because the tag is immutable"), ACR a locked tag with DENIED
 * ("… disallowed on this registry, repository or image"), others 409
 * TAG_IMMUTABLE.
 */
export function isTagRefusal(error: unknown): boolean {
  if (!(error instanceof OciError)) return false;
  const codes = ((error.details?.['errors'] as { code?: string }[] | undefined) ?? []).map((e) => e.code);
  if (error.status === 412) return true;
  if (codes.some((c) => c === 'TAG_INVALID' || c === 'TAG_IMMUTABLE')) return true;
  return (error.status === 400 || error.status === 403 || error.status === 405 || error.status === 409)
    && /immutable|cannot be overwritten|is locked|write.?disabled|disallowed on this registry/i.test(error.message);
}

/** For messages: `host/repo:tag`. */
export function describeTags(tags: readonly Reference[]): string {
  return tags.map((t) => formatReference(t)).join(', ');
}

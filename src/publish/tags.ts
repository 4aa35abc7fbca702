import { parseReference, withTag, type Reference } from '../oci/reference.js';
import { codedError, type ErrorCodes } from '../lib/errors.js';

export const publishCodes = { TARGET_INVALID: 'input' } as const satisfies ErrorCodes;
export type PublishCode = keyof typeof publishCodes;

export class PublishError extends codedError(publishCodes) {}

const tagPattern = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Where the patched image goes: `-t` as a bare tag (same repository) or a
 * full reference; otherwise `<tag><suffix>`. Digest-only sources need -t.
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

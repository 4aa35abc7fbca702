import { codedError, type ErrorCodes } from '../lib/errors.js';

/** Reading and writing images: manifests, configs, layers and the paths inside them. */
export const imageCodes = {
  MANIFEST_INVALID: 'input',
  CONFIG_INVALID: 'input',
  LAYER_INVALID: 'input',
  PATH_TRAVERSAL: 'input',
  HARDLINK_ESCAPE: 'input',
  SYMLINK_LOOP: 'input',
  DECOMPRESSION_LIMIT: 'input',
  /** A layer whose uncompressed content is not what the image's config says (its diff_id). */
  DIFF_ID_MISMATCH: 'input',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported',
} as const satisfies ErrorCodes;
export type ImageCode = keyof typeof imageCodes;

export class ImageError extends codedError(imageCodes) {}

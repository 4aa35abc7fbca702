import { PatchdError } from '../lib/errors.js';

/**
 * Image reading and writing errors. Codes: MANIFEST_INVALID, CONFIG_INVALID,
 * UNSUPPORTED_MEDIA_TYPE, PATH_TRAVERSAL, HARDLINK_ESCAPE, SYMLINK_LOOP,
 * DECOMPRESSION_LIMIT, LAYER_INVALID.
 */
export class ImageError extends PatchdError {}

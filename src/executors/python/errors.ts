import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** Python libraries installed from wheels: the index, the wheel, the image's install and its interpreter. */
export const pythonCodes = {
  /** The package index could not be asked (network, 5xx, 429): worth another attempt. */
  INDEX_UNREACHABLE: 'unavailable',
  INDEX_INVALID: 'upstream',
  /** The index does not publish the planned version (or any file of it). */
  VERSION_NOT_PUBLISHED: 'upstream',
  /** The release's Requires-Python excludes the image's interpreter. */
  REQUIRES_PYTHON: 'unsupported',
  DOWNLOAD_FAILED: 'unavailable',
  DIGEST_MISMATCH: 'upstream',
  /** The wheel is not one pip would install (layout, WHEEL metadata, RECORD hashes). */
  WHEEL_INVALID: 'upstream',
  /** The old install's RECORD cannot be read or names something outside its install scheme. */
  RECORD_INVALID: 'input',
  PATH_ESCAPE: 'input',
  /** The old install cannot be replaced exactly (no file list, an interpreter patchd cannot identify). */
  INSTALL_UNSUPPORTED: 'unsupported',
  /** Only pip can install the release (no fitting wheel) and the image has no pip for that interpreter. */
  PIP_MISSING: 'unsupported',
} as const satisfies ErrorCodes;
export type PythonCode = keyof typeof pythonCodes;

export class PythonError extends codedError(pythonCodes) {}

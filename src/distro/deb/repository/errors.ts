import { codedError, type ErrorCodes } from '../../../lib/errors.js';

/** Apt repositories: the image's sources, signed Release files, indexes, package downloads. */
export const aptCodes = {
  SOURCES_INVALID: 'input',
  KEYRING_MISSING: 'input',
  RELEASE_SIGNATURE_INVALID: 'upstream',
  RELEASE_EXPIRED: 'upstream',
  RELEASE_INVALID: 'upstream',
  /** Missing or not matching InRelease: a mirror in the middle of a sync, worth another try. */
  INDEX_MISSING: 'unavailable',
  INDEX_HASH_MISMATCH: 'unavailable',
  DEB_HASH_MISMATCH: 'unavailable',
  FETCH_FAILED: 'unavailable',
} as const satisfies ErrorCodes;
export type AptCode = keyof typeof aptCodes;

export class AptError extends codedError(aptCodes) {}

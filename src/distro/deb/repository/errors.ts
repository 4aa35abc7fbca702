import { PatchdError } from '../../../lib/errors.js';

/**
 * Apt repository errors. Codes: SOURCES_INVALID, KEYRING_MISSING,
 * RELEASE_SIGNATURE_INVALID, RELEASE_EXPIRED, RELEASE_INVALID, INDEX_MISSING,
 * INDEX_HASH_MISMATCH, DEB_HASH_MISMATCH, FETCH_FAILED.
 */
export class AptError extends PatchdError {}

import { PatchdError } from '../../lib/errors.js';

/**
 * Errors of the in-process Debian executor. Codes:
 * DEB_INVALID (malformed .deb), DEB_UNSUPPORTED (compression we cannot read),
 * DEB_PATH_TRAVERSAL, SCRIPTS_REQUIRED (maintainer scripts or triggers that do
 * real work and have no in-process handler), DPKG_DATABASE_INVALID,
 * VERIFY_FAILED (result does not hold the planned versions).
 */
export class DebError extends PatchdError {}

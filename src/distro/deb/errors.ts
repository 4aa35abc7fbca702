import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** Debian package formats (.deb, control files, the dpkg database) and the in-process executor's own checks. */
export const debCodes = {
  /** A control file or paragraph that does not parse. */
  CONTROL_INVALID: 'input',
  /** The image's dpkg database is damaged. */
  DPKG_DATABASE_INVALID: 'input',
  /** A .deb from the repository is malformed or hostile. */
  DEB_INVALID: 'upstream',
  DEB_PATH_TRAVERSAL: 'upstream',
  /** A .deb compressed in a way we cannot read. */
  DEB_UNSUPPORTED: 'unsupported',
  /** Maintainer scripts or triggers that do real work and have no in-process handler. */
  SCRIPTS_REQUIRED: 'unsupported',
  /** A certificate the ca-certificates handler rehashes (the image's or a package's) that is not X.509 DER. */
  CERTIFICATE_INVALID: 'input',
  /** A handler read back a staged file whose bytes the executor did not keep: a gap of ours, not the package's. */
  STAGED_CONTENT_UNAVAILABLE: 'internal',
  /** The written layer does not hold the planned versions: a fault of ours. */
  VERIFY_FAILED: 'internal',
} as const satisfies ErrorCodes;
export type DebCode = keyof typeof debCodes;

export class DebError extends codedError(debCodes) {}

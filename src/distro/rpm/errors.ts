import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** rpm's package databases as found in an image. */
export const rpmCodes = {
  /** The image's rpm database is damaged. */
  RPMDB_INVALID: 'input',
  /** An rpm database in a form patchd cannot read (an encrypted Berkeley DB). */
  RPMDB_UNSUPPORTED: 'unsupported',
} as const satisfies ErrorCodes;
export type RpmCode = keyof typeof rpmCodes;

export class RpmError extends codedError(rpmCodes) {}

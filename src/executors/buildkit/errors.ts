import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** The BuildKit executor: the daemon, the build, and what it exports. */
export const buildkitCodes = {
  BUILDKIT_ADDRESS_INVALID: 'input',
  BUILDKIT_UNAVAILABLE: 'unavailable',
  BUILDKIT_TOO_OLD: 'unsupported',
  BUILDKIT_NO_WORKER: 'upstream',
  BUILDKIT_PERMISSION: 'upstream',
  BUILDKIT_SOLVE_FAILED: 'upstream',
  BUILDKIT_EXPORT_FAILED: 'upstream',
  BUILDKIT_EXPORT_INVALID: 'upstream',
  /** A message from the daemon that does not decode as protobuf. */
  BUILDKIT_RESPONSE_INVALID: 'upstream',
  EXECUTOR_UNSUPPORTED: 'unsupported',
  /** A strategy was asked to pass something unsafe to a package manager. */
  BUILD_REQUEST_INVALID: 'input',
  VERIFY_FAILED: 'internal',
} as const satisfies ErrorCodes;
export type BuildkitCode = keyof typeof buildkitCodes;

export class BuildkitError extends codedError(buildkitCodes) {}

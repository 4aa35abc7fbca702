import { PatchdError } from '../lib/errors.js';

export class VersionError extends PatchdError {}

export function invalid(ecosystem: string, input: string): VersionError {
  return new VersionError('VERSION_INVALID', `invalid ${ecosystem} version ${JSON.stringify(input)}`);
}

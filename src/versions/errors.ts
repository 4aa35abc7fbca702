import { codedError, type ErrorCodes } from '../lib/errors.js';

export const versionCodes = { VERSION_INVALID: 'input' } as const satisfies ErrorCodes;
export type VersionCode = keyof typeof versionCodes;

export class VersionError extends codedError(versionCodes) {}

export function invalid(ecosystem: string, input: string): VersionError {
  return new VersionError('VERSION_INVALID', `invalid ${ecosystem} version ${JSON.stringify(input)}`);
}

import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** .NET applications patched by replacing package DLLs and rewriting their deps.json. */
export const dotnetCodes = {
  /** The app's deps.json is not what the .NET SDK writes (not JSON, no targets, no such package). */
  DEPS_JSON_INVALID: 'input',
  /** Something about the app or the package that patchd does not patch exactly (native or RID-specific assets, a framework it cannot match, a second app). */
  DOTNET_UNSUPPORTED: 'unsupported',
  /** The new version needs a DLL or a package the app does not have: patching would have to add it. */
  DOTNET_WOULD_ADD: 'unsupported',
  /** The package source answered, and the answer is final: no such package, a damaged .nupkg, a DLL that is no .NET assembly. */
  NUPKG_INVALID: 'upstream',
  NUPKG_NOT_FOUND: 'upstream',
  /** The .nupkg's bytes are not the ones the source's .nupkg.sha512 names. */
  NUPKG_HASH_MISMATCH: 'upstream',
  /** The source publishes no hash to check the .nupkg against: nothing unverified is installed. */
  NUPKG_UNVERIFIABLE: 'unsupported',
  /** The package source cannot be reached now (network, 5xx, 429): worth another attempt. */
  NUGET_UNAVAILABLE: 'unavailable',
  /** A value that would be passed to a tool in the BuildKit step is not safe to pass. */
  DOTNET_REQUEST_INVALID: 'input',
  /** patchd's own container program is missing (patchd not built). */
  DOTNET_INTERNAL: 'internal',
} as const satisfies ErrorCodes;
export type DotnetCode = keyof typeof dotnetCodes;

export class DotnetError extends codedError(dotnetCodes) {}

import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** Installing npm packages into an image: the registry, the tarball, the project. */
export const npmCodes = {
  /** The registry did not answer (network, 5xx, 429): worth another attempt. */
  NPM_REGISTRY_UNREACHABLE: 'unavailable',
  /** The registry answered something that is not a packument, or refused the credentials. */
  NPM_REGISTRY_INVALID: 'upstream',
  NPM_PACKAGE_NOT_FOUND: 'upstream',
  /** The fixed version is not published (or was unpublished) on the registry. */
  NPM_VERSION_NOT_PUBLISHED: 'upstream',
  /** The version's dist has neither integrity nor shasum: nothing to verify the tarball against. */
  NPM_INTEGRITY_MISSING: 'upstream',
  /** The tarball's bytes do not hash to the registry's integrity. */
  NPM_INTEGRITY_MISMATCH: 'upstream',
  /** The tarball is not a gzip tar of a package, or its package.json names another package or version. */
  NPM_TARBALL_INVALID: 'upstream',
  /** A tarball entry names a path outside the package directory. */
  NPM_TARBALL_PATH_ESCAPE: 'upstream',
  /** A direct dependency: npm overrides cannot patch it (EOVERRIDE). */
  NPM_DIRECT_DEPENDENCY: 'unsupported',
  /** npm and corepack themselves. */
  NPM_CORE_TOOLING: 'unsupported',
  /** yarn or pnpm projects, and other layouts npm does not manage. */
  NPM_PROJECT_UNSUPPORTED: 'unsupported',
  /** The fallback needs the image's own npm and node, and the image has none. */
  NPM_NOT_IN_IMAGE: 'unsupported',
  /** The fallback would need the private registry's credentials inside a BuildKit build. */
  NPM_CREDENTIALS_UNSUPPORTED: 'unsupported',
  /** The new version declares os/cpu the image's platform is not. */
  NPM_PLATFORM_UNSUPPORTED: 'unsupported',
  /** The planned package is not where the plan says, or at another version. */
  NPM_PACKAGE_MISSING: 'input',
  /** A lockfile in the image is not JSON. */
  NPM_LOCKFILE_INVALID: 'input',
  /** A name, version, path or URL that must not be passed to npm. */
  NPM_REQUEST_INVALID: 'input',
  /** A fault of patchd's own (BuildKit steps asked for libraries that were never deferred). */
  NPM_INTERNAL: 'internal',
} as const satisfies ErrorCodes;
export type NpmCode = keyof typeof npmCodes;

export class NpmError extends codedError(npmCodes) {}

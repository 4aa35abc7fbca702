import { codedError, type ErrorCodes } from '../../lib/errors.js';

/** Go modules: go.mod updates and binaries rebuilt from the module proxy. */
export const goCodes = {
  /** A module path, version, sum, path or build setting that is not safe to hand to the go command. */
  GO_REQUEST_INVALID: 'input',
  /** No Go tooling image to run the go command in (buildkit.toolingImages.go, --go-tooling-image). */
  GO_TOOLING_NOT_CONFIGURED: 'unsupported',
  /** The binary was not built from a module zip the proxy serves ((devel), a VCS checkout): nothing to rebuild it from. */
  GO_SOURCE_UNAVAILABLE: 'unsupported',
  /** The binary records a build patchd cannot reproduce (gccgo, a c-shared library, an unknown flag). */
  GO_BUILD_UNSUPPORTED: 'unsupported',
  /** The binary named by the plan carries no readable Go build info. */
  GO_BUILDINFO_UNREADABLE: 'unsupported',
  /** The Go proxy needs credentials, which would be written into the BuildKit definition. */
  GO_PROXY_CREDENTIALS: 'unsupported',
  GO_PROXY_UNREACHABLE: 'unavailable',
  /** The proxy answered something that is not a module version's info. */
  GO_PROXY_INVALID: 'upstream',
} as const satisfies ErrorCodes;
export type GoCode = keyof typeof goCodes;

export class GoError extends codedError(goCodes) {}

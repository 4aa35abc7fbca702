import { GoError } from './errors.js';

/**
 * What the go command is handed, checked first: module and package paths,
 * versions, h1 sums and image paths. The checks are stricter than Go's own
 * (golang.org/x/mod/module.CheckPath) where that costs nothing real: no
 * element may begin with '-' or '.', so nothing reads as a flag or climbs out.
 */
const element = /^[A-Za-z0-9_~][A-Za-z0-9._~-]*$/;
const importElement = /^[A-Za-z0-9_~][A-Za-z0-9._~+-]*$/;
/** Semantic version as modules spell it: v1.2.3, v0.0.0-20170915032832-14c0d48ead0c, v2.0.0+incompatible. */
const moduleVersion = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+incompatible)?$/;
const h1 = /^h1:[A-Za-z0-9+/]{43}=$/;

export function isModulePath(path: string): boolean {
  const parts = path.split('/');
  return path.length <= 512 && parts.every((p) => element.test(p) && !p.endsWith('.')) && parts[0]!.includes('.');
}

/** A package import path (a module path, or a path inside one). */
export function isPackagePath(path: string): boolean {
  const parts = path.split('/');
  return path.length <= 1024 && parts.every((p) => importElement.test(p) && !p.endsWith('.'));
}

export function isModuleVersion(version: string): boolean {
  return version.length <= 256 && moduleVersion.test(version);
}

export function checkModule(path: string, version: string): string {
  if (!isModulePath(path)) throw new GoError('GO_REQUEST_INVALID', `refusing module path ${JSON.stringify(path)}`);
  if (!isModuleVersion(version)) throw new GoError('GO_REQUEST_INVALID', `refusing version ${JSON.stringify(version)} of ${path}`);
  return `${path}@${version}`;
}

export function checkSum(sum: string, what: string): string {
  if (!h1.test(sum)) throw new GoError('GO_REQUEST_INVALID', `refusing checksum ${JSON.stringify(sum)} of ${what}`);
  return sum;
}

/**
 * A root-relative path in the image (a module root, a binary): no empty,
 * '.' or '..' elements, no control characters; '.' alone is the root.
 */
export function checkImagePath(path: string, what: string): string {
  if (path === '.') return path;
  const parts = path.split('/');
  // eslint-disable-next-line no-control-regex
  if (path.length > 4096 || /[\x00-\x1f\x7f]/.test(path) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new GoError('GO_REQUEST_INVALID', `refusing ${what} path ${JSON.stringify(path)}`);
  }
  return path;
}

/**
 * The module proxy's case encoding (golang.org/x/mod/module.EscapePath):
 * each upper-case letter becomes '!' and its lower case, so paths differing
 * only in case map to distinct URLs on case-insensitive file systems.
 */
export function escapeModulePath(path: string): string {
  if (!isModulePath(path)) throw new GoError('GO_REQUEST_INVALID', `refusing module path ${JSON.stringify(path)}`);
  return path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** Versions are escaped the same way (pre-release tags may hold upper case). */
export function escapeModuleVersion(version: string): string {
  if (!isModuleVersion(version)) throw new GoError('GO_REQUEST_INVALID', `refusing version ${JSON.stringify(version)}`);
  return version.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** `<proxy>/<escaped module>/@v/<escaped version>.<ext>`: where the proxy serves one version's info, go.mod and zip. */
export function proxyUrl(proxy: string, path: string, version: string, ext: 'info' | 'mod' | 'zip'): string {
  return `${proxy.replace(/\/+$/, '')}/${escapeModulePath(path)}/@v/${escapeModuleVersion(version)}.${ext}`;
}

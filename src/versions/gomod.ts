import { invalid } from './errors.js';

/**
 * golang.org/x/mod/semver: vMAJOR[.MINOR[.PATCH]][-prerelease][+build]; the shorthands v1 and v1.2 mean
 * v1.0.0 and v1.2.0 (and take no pre-release or build). Numbers stay decimal strings, as in x/mod, so
 * v1.2.99999999999999999 still orders below v1.2.100000000000000000.
 */
export interface GoVersion { readonly major: string; readonly minor: string; readonly patch: string; readonly prerelease: readonly string[] }

const pattern = /^v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?$/;

export function parseGoVersion(input: string): GoVersion {
  const m = pattern.exec(input);
  if (!m) throw invalid('Go module', input);
  const prerelease = m[4]?.split('.') ?? [];
  // Numeric identifiers must not have leading zeros (semver 2.0, which x/mod enforces).
  if (prerelease.some((p) => /^0[0-9]+$/.test(p))) throw invalid('Go module', input);
  return { major: m[1]!, minor: m[2] ?? '0', patch: m[3] ?? '0', prerelease };
}

export function isValidGoVersion(v: string): boolean {
  try {
    parseGoVersion(v);
    return true;
  } catch {
    return false;
  }
}

// module.IsPseudoVersion's pattern (golang.org/x/mod/module/pseudo.go).
const pseudo = /^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

/**
 * module.IsPseudoVersion: vX.0.0-yyyymmddhhmmss-abcdef123456 and the forms built on a tag
 * (vX.Y.(Z+1)-0.yyyymmddhhmmss-... and vX.Y.Z-pre.0.yyyymmddhhmmss-...). They are ordinary
 * pre-releases, so they order as such: after the tag they were built on, before the next release.
 */
export function isPseudoVersion(v: string): boolean {
  return (v.match(/-/g)?.length ?? 0) >= 2 && isValidGoVersion(v) && pseudo.test(v);
}

// x/mod's compareInt: decimal strings without leading zeros, by length and then digits.
function compareInt(x: string, y: string): number {
  if (x === y) return 0;
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : 1;
}

/** semver.Compare, except that an invalid version is refused instead of sorting below every valid one. */
export function compareGoVersions(a: string, b: string): number {
  const x = parseGoVersion(a);
  const y = parseGoVersion(b);
  return compareInt(x.major, y.major) || compareInt(x.minor, y.minor) || compareInt(x.patch, y.patch)
    || comparePrerelease(x.prerelease, y.prerelease);
}

/** semver 2.0 §11: no pre-release > any; identifiers numeric (by value) < alphanumeric (ASCII); more identifiers win ties. */
export function comparePrerelease(a: readonly string[], b: readonly string[], ignoreCase = false): number {
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 0 : a.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    let x = a[i];
    let y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xn = /^[0-9]+$/.test(x);
    const yn = /^[0-9]+$/.test(y);
    if (xn && yn) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
      continue;
    }
    if (xn !== yn) return xn ? -1 : 1;
    if (ignoreCase) { x = x.toLowerCase(); y = y.toLowerCase(); }
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

import { invalid } from './errors.js';

/** golang.org/x/mod/semver: vMAJOR[.MINOR[.PATCH]][-prerelease][+build]; shorthands v1 and v1.2 mean v1.0.0 and v1.2.0. */
export interface GoVersion { readonly major: number; readonly minor: number; readonly patch: number; readonly prerelease: readonly string[] }

const pattern = /^v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?)?)?$/;

export function parseGoVersion(input: string): GoVersion {
  const m = pattern.exec(input);
  if (!m) throw invalid('Go module', input);
  const prerelease = m[4]?.split('.') ?? [];
  // Numeric identifiers must not have leading zeros (semver 2.0, which x/mod enforces).
  if (prerelease.some((p) => /^0[0-9]+$/.test(p))) throw invalid('Go module', input);
  return { major: Number(m[1]), minor: Number(m[2] ?? 0), patch: Number(m[3] ?? 0), prerelease };
}

/** Pseudo-versions (v0.0.0-20191109021931-daa7c04131f5 and friends) are pre-releases, so they order as such. */
export function isPseudoVersion(v: string): boolean {
  return /^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/.test(v);
}

export function compareGoVersions(a: string, b: string): number {
  const x = parseGoVersion(a);
  const y = parseGoVersion(b);
  for (const k of ['major', 'minor', 'patch'] as const) if (x[k] !== y[k]) return x[k] < y[k] ? -1 : 1;
  return comparePrerelease(x.prerelease, y.prerelease);
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

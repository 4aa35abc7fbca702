import { invalid } from './errors.js';

/**
 * NuGetVersion: SemVer 2.0 plus the legacy fourth part, 1.2.3.4-Beta.1+meta. Missing parts are 0 and
 * leading zeros are read away (1.01 = 1.1.0.0); labels compare case-insensitively; metadata is ignored
 * (VersionComparer.Default).
 */
export interface NuGetVersion { readonly parts: readonly [number, number, number, number]; readonly release: readonly string[] }

const shape = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

export function parseNuGetVersion(input: string): NuGetVersion {
  // NuGet trims surrounding whitespace ("22.3.07     " parses).
  const m = shape.exec(input.trim());
  if (!m) throw invalid('NuGet', input);
  const parts = [m[1], m[2], m[3], m[4]].map((p) => Number(p ?? 0));
  // The numbers go through System.Version, which holds Int32s.
  if (parts.some((p) => p > 0x7fffffff)) throw invalid('NuGet', input);
  return { parts: parts as [number, number, number, number], release: m[5]?.split('.') ?? [] };
}

// int.TryParse as CompareRelease uses it: an optional sign, digits, within Int32.
function asInt(label: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(label)) return undefined;
  const n = Number(label);
  return n >= -0x80000000 && n <= 0x7fffffff ? n : undefined;
}

/** VersionComparer.CompareRelease: numbers by value and before words; words by StringComparer.OrdinalIgnoreCase. */
function compareLabel(a: string, b: string): number {
  const x = asInt(a);
  const y = asInt(b);
  if (x !== undefined && y !== undefined) return x === y ? 0 : x < y ? -1 : 1;
  if (x !== undefined || y !== undefined) return x !== undefined ? -1 : 1;
  const p = a.toUpperCase();
  const q = b.toUpperCase();
  return p === q ? 0 : p < q ? -1 : 1;
}

export function compareNuGetVersions(a: string, b: string): number {
  const x = parseNuGetVersion(a);
  const y = parseNuGetVersion(b);
  for (let i = 0; i < 4; i++) if (x.parts[i] !== y.parts[i]) return x.parts[i]! < y.parts[i]! ? -1 : 1;
  // A pre-release sorts before the release; then label by label, and more labels win a tie.
  if (x.release.length === 0 || y.release.length === 0) {
    return x.release.length === y.release.length ? 0 : x.release.length === 0 ? 1 : -1;
  }
  for (let i = 0; i < Math.max(x.release.length, y.release.length); i++) {
    const p = x.release[i];
    const q = y.release[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const r = compareLabel(p, q);
    if (r !== 0) return r;
  }
  return 0;
}

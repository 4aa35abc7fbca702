import { invalid } from './errors.js';
import { comparePrerelease } from './gomod.js';

/** NuGet's SemVer 2.0 with the legacy fourth part: 1.2.3.4-Beta.1+meta; missing parts are 0, labels compare case-insensitively, metadata is ignored. */
export interface NuGetVersion { readonly parts: readonly [number, number, number, number]; readonly release: readonly string[] }

export function parseNuGetVersion(input: string): NuGetVersion {
  const m = /^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\s*$/.exec(input);
  if (!m) throw invalid('NuGet', input);
  return { parts: [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0), Number(m[4] ?? 0)], release: m[5]?.split('.') ?? [] };
}

export function compareNuGetVersions(a: string, b: string): number {
  const x = parseNuGetVersion(a);
  const y = parseNuGetVersion(b);
  for (let i = 0; i < 4; i++) if (x.parts[i] !== y.parts[i]) return x.parts[i]! < y.parts[i]! ? -1 : 1;
  return comparePrerelease(x.release, y.release, true);
}

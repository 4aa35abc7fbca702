import { compareApkVersions } from './apk.js';
import { compareDpkgVersions } from './dpkg.js';
import { compareGoVersions, parseGoVersion } from './gomod.js';
import { compareNpmVersions, npmParts } from './npm.js';
import { compareNuGetVersions, parseNuGetVersion } from './nuget.js';
import { comparePep440, parsePep440 } from './pep440.js';
import { compareRpmEvrLoose } from './rpm.js';

/** The version schemes patchd orders: three distribution families and four language ecosystems. */
export type Ecosystem = 'debian' | 'alpine' | 'rpm' | 'pypi' | 'npm' | 'go' | 'nuget';

const comparators: Record<Ecosystem, (a: string, b: string) => number> = {
  debian: compareDpkgVersions,
  alpine: compareApkVersions,
  // Advisories often name a fix by version alone; rpm's dependency matching ignores a release only one side has.
  rpm: compareRpmEvrLoose,
  pypi: comparePep440,
  npm: compareNpmVersions,
  go: compareGoVersions,
  nuget: compareNuGetVersions,
};

/** Negative, zero or positive as `a` is older, the same or newer; throws VersionError on a version the scheme rejects. */
export function compareVersions(ecosystem: Ecosystem, a: string, b: string): number {
  return Math.sign(comparators[ecosystem](a, b));
}

/** major.minor.patch of a library version (missing parts are 0), for judging how big a bump is; undefined when unparseable. */
export function versionParts(ecosystem: Ecosystem, v: string): { major: number; minor: number; patch: number } | undefined {
  try {
    switch (ecosystem) {
      case 'pypi': {
        const r = parsePep440(v).release;
        return { major: r[0] ?? 0, minor: r[1] ?? 0, patch: r[2] ?? 0 };
      }
      case 'npm': return npmParts(v);
      case 'go': {
        const g = parseGoVersion(v);
        return { major: Number(g.major), minor: Number(g.minor), patch: Number(g.patch) };
      }
      case 'nuget': {
        const p = parseNuGetVersion(v).parts;
        return { major: p[0], minor: p[1], patch: p[2] };
      }
      default: return undefined;
    }
  } catch {
    return undefined;
  }
}

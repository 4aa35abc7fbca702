import semver from 'semver';
import { invalid } from './errors.js';

/**
 * npm's own ordering, by node-semver itself. Loose parsing, because that is how npm reads the versions
 * in installed package.json files ("v1.2.3", "=1.2.3", "01.02.03", "1.2.3foo").
 */
export function parseNpmVersion(v: string): semver.SemVer {
  const parsed = semver.parse(v, { loose: true });
  if (!parsed) throw invalid('npm', v);
  return parsed;
}

/** semver.compare: build metadata is ignored, a pre-release sorts before its release. */
export function compareNpmVersions(a: string, b: string): number {
  return semver.compare(parseNpmVersion(a), parseNpmVersion(b));
}

export function npmParts(v: string): { major: number; minor: number; patch: number } | undefined {
  const p = semver.parse(v, { loose: true });
  return p ? { major: p.major, minor: p.minor, patch: p.patch } : undefined;
}

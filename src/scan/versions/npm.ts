import semver from 'semver';
import { invalid } from './errors.js';

/** npm's own ordering (node-semver), with loose parsing as npm applies to installed package.json versions. */
export function compareNpmVersions(a: string, b: string): number {
  const x = semver.parse(a, { loose: true });
  const y = semver.parse(b, { loose: true });
  if (!x) throw invalid('npm', a);
  if (!y) throw invalid('npm', b);
  return semver.compare(x, y);
}

export function npmParts(v: string): { major: number; minor: number; patch: number } | undefined {
  const p = semver.parse(v, { loose: true });
  return p ? { major: p.major, minor: p.minor, patch: p.patch } : undefined;
}

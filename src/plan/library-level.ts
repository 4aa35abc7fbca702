import { compareVersions, versionParts, type Ecosystem } from '../versions/index.js';

/** How far a library may move: the seeds' --library-patch-level. */
export type LibraryPatchLevel = 'patch' | 'minor' | 'major';
type Bump = 'patch' | 'minor' | 'major';
const rank: Record<Bump, number> = { patch: 0, minor: 1, major: 2 };

export function bumpOf(ecosystem: Ecosystem, from: string, to: string): Bump {
  const a = versionParts(ecosystem, from);
  const b = versionParts(ecosystem, to);
  if (!a || !b || a.major !== b.major) return 'major';
  return a.minor !== b.minor ? 'minor' : 'patch';
}

export type LevelChoice = { kind: 'chosen'; version: string } | { kind: 'blocked'; needed: string };

/**
 * Copa's choice among one advisory's fixed versions (Trivy's comma-separated
 * list): the smallest bump wins (patch > minor > major) and, within a bump,
 * the lowest version that fixes it; bumps beyond `level` are blocked. With one
 * fixed version there is nothing to prefer: it is taken if the level allows.
 */
export function chooseFixedVersion(ecosystem: Ecosystem, installed: string, fixed: readonly string[], level: LibraryPatchLevel): LevelChoice {
  const above = fixed.filter((v) => compareVersions(ecosystem, v, installed) > 0);
  if (above.length === 0) return { kind: 'blocked', needed: fixed[fixed.length - 1] ?? '' };
  const candidates = above
    .map((version) => ({ version, bump: bumpOf(ecosystem, installed, version) }))
    .sort((a, b) => rank[a.bump] - rank[b.bump] || compareVersions(ecosystem, a.version, b.version));
  const allowed = candidates.find((c) => rank[c.bump] <= rank[level]);
  return allowed ? { kind: 'chosen', version: allowed.version } : { kind: 'blocked', needed: candidates[0]!.version };
}

/**
 * One target for a package with several advisories: each advisory's choice,
 * then the highest of them, so every advisory's fix is included ("picks the
 * highest version to fix all CVEs"). Advisories whose fix is beyond the level
 * are returned as blocked; the others are still fixed.
 */
export function combineChoices(ecosystem: Ecosystem, installed: string, perFinding: readonly { id: string; fixed: readonly string[] }[], level: LibraryPatchLevel):
  { target?: string; fixes: string[]; blocked: { id: string; needed: string }[] } {
  let target: string | undefined;
  const fixes: string[] = [];
  const blocked: { id: string; needed: string }[] = [];
  for (const f of perFinding) {
    const choice = chooseFixedVersion(ecosystem, installed, f.fixed, level);
    if (choice.kind === 'blocked') { blocked.push({ id: f.id, needed: choice.needed }); continue; }
    fixes.push(f.id);
    if (!target || compareVersions(ecosystem, choice.version, target) > 0) target = choice.version;
  }
  // The highest choice may itself cross the level for this package (e.g. two lines' fixes); keep it only if allowed.
  if (target && rank[bumpOf(ecosystem, installed, target)] > rank[level]) {
    return { fixes: [], blocked: [...blocked, ...fixes.map((id) => ({ id, needed: target! }))] };
  }
  return { ...(target ? { target } : {}), fixes, blocked };
}

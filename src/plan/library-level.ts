import { VersionError } from '../versions/errors.js';
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

export type LevelChoice =
  | { kind: 'chosen'; version: string }
  | { kind: 'blocked'; needed: string }
  /** Every fixed version the advisory names is at or below the installed one. */
  | { kind: 'none-above'; fixed: readonly string[] }
  /** A version the ecosystem's scheme rejects (the installed one, or every usable fix), so nothing can be judged. */
  | { kind: 'unparseable'; which: 'installed' | 'fixed'; version: string; reason: string };

/**
 * Copa's choice among one advisory's fixed versions (Trivy's comma-separated
 * list): the smallest bump wins (patch > minor > major) and, within a bump,
 * the lowest version that fixes it; bumps beyond `level` are blocked. With one
 * fixed version there is nothing to prefer: it is taken if the level allows.
 * A fixed version that cannot be parsed is passed over while another can
 * serve; never thrown.
 */
export function chooseFixedVersion(ecosystem: Ecosystem, installed: string, fixed: readonly string[], level: LibraryPatchLevel): LevelChoice {
  const installedRejected = rejection(ecosystem, installed);
  if (installedRejected) return { kind: 'unparseable', which: 'installed', version: installed, reason: installedRejected };
  const usable = fixed.filter((v) => !rejection(ecosystem, v));
  const above = usable.filter((v) => compareVersions(ecosystem, v, installed) > 0);
  if (above.length === 0) {
    const bad = fixed.find((v) => rejection(ecosystem, v));
    if (bad !== undefined) return { kind: 'unparseable', which: 'fixed', version: bad, reason: rejection(ecosystem, bad)! };
    return fixed.length > 0 ? { kind: 'none-above', fixed } : { kind: 'blocked', needed: '' };
  }
  const candidates = above
    .map((version) => ({ version, bump: bumpOf(ecosystem, installed, version) }))
    .sort((a, b) => rank[a.bump] - rank[b.bump] || compareVersions(ecosystem, a.version, b.version));
  const allowed = candidates.find((c) => rank[c.bump] <= rank[level]);
  return allowed ? { kind: 'chosen', version: allowed.version } : { kind: 'blocked', needed: candidates[0]!.version };
}

/**
 * One target for a package with several advisories: the smallest version the
 * level allows that has every fixable advisory's fix ("picks the highest
 * version to fix all CVEs", without moving further than that needs).
 * Advisories whose fix is beyond the level are returned as blocked, and those
 * with no usable fixed version (unparseable, not above the installed one) as
 * unfixable, with why; the others are still fixed.
 *
 * This is where patchd departs from Copa on purpose: Copa, at `minor` (and at
 * `major` once any advisory lists alternatives), takes the highest patch
 * release when there is one and leaves the advisories only a minor release
 * fixes open; patchd takes the minor release that fixes them all.
 */
export function combineChoices(ecosystem: Ecosystem, installed: string, perFinding: readonly { id: string; fixed: readonly string[] }[], level: LibraryPatchLevel):
  { target?: string; fixes: string[]; blocked: { id: string; needed: string }[]; unfixable?: { id: string; reason: string }[] } {
  const blocked: { id: string; needed: string }[] = [];
  const unfixable: { id: string; reason: string }[] = [];
  const open: { id: string; fixed: readonly string[] }[] = [];
  for (const f of perFinding) {
    const choice = chooseFixedVersion(ecosystem, installed, f.fixed, level);
    if (choice.kind === 'chosen') open.push({ id: f.id, fixed: f.fixed.filter((v) => !rejection(ecosystem, v)) });
    else if (choice.kind === 'blocked') blocked.push({ id: f.id, needed: choice.needed });
    else unfixable.push({ id: f.id, reason: whyUnfixable(ecosystem, installed, choice) });
  }
  const result = (r: { target?: string; fixes: string[] }) => ({ ...r, blocked, ...(unfixable.length > 0 ? { unfixable } : {}) });
  if (open.length === 0) return result({ fixes: [] });

  // Every fix within the level is a candidate; each open advisory has at least one.
  const candidates = [...new Set(open.flatMap((f) => f.fixed))]
    .filter((v) => compareVersions(ecosystem, v, installed) > 0 && rank[bumpOf(ecosystem, installed, v)] <= rank[level])
    .sort((a, b) => compareVersions(ecosystem, a, b))
    .map((version) => ({ version, fixes: open.filter((f) => hasFix(ecosystem, version, f.fixed)) }));
  // Release lines that never meet (one fix only on 1.26.x, another only on 1.27.x): the version fixing most, lowest first.
  const best = candidates.find((c) => c.fixes.length === open.length) ?? candidates.reduce((a, b) => (b.fixes.length > a.fixes.length ? b : a));
  for (const f of open) {
    if (!best.fixes.includes(f)) unfixable.push({ id: f.id, reason: `its fix (${f.fixed.join(', ')}) is on another release line than ${best.version}, which the package's other advisories need` });
  }
  return result({ target: best.version, fixes: best.fixes.map((f) => f.id) });
}

/**
 * Whether `version` has an advisory's fix, reading its fixed versions as one
 * per release line (Trivy's "1.26.17, 2.0.6"): at or above the highest, or at
 * or above a lower one and on that one's line, the part of the version where
 * it and the next fix differ (1.x for 1.26.17 before 2.0.6; 1.26.x for 1.26.9
 * before 1.28.0, so 1.27.1 does not have that fix).
 */
export function hasFix(ecosystem: Ecosystem, version: string, fixed: readonly string[]): boolean {
  const compare = (a: string, b: string) => compareVersions(ecosystem, a, b);
  const sorted = [...fixed].sort(compare);
  if (sorted.length === 0) return false;
  if (compare(version, sorted[sorted.length - 1]!) >= 0) return true;
  for (let i = sorted.length - 2; i >= 0; i--) {
    if (compare(version, sorted[i]!) < 0) continue;
    const [f, next, v] = [sorted[i]!, sorted[i + 1]!, version].map((x) => versionParts(ecosystem, x));
    if (!f || !next || !v) return true;
    if (f.major !== next.major) return v.major === f.major;
    if (f.minor !== next.minor) return v.major === f.major && v.minor === f.minor;
    return true;
  }
  return false;
}

function whyUnfixable(ecosystem: Ecosystem, installed: string, choice: Exclude<LevelChoice, { kind: 'chosen' | 'blocked' }>): string {
  if (choice.kind === 'none-above') return `no fixed version above the installed ${installed} (the advisory names ${choice.fixed.join(', ')})`;
  return `${choice.which} version ${JSON.stringify(choice.version)} cannot be compared as a ${ecosystem} version (${choice.reason})`;
}

/** Why the scheme rejects `version`, or undefined when it parses. */
function rejection(ecosystem: Ecosystem, version: string): string | undefined {
  try {
    compareVersions(ecosystem, version, version);
    return undefined;
  } catch (error) {
    if (error instanceof VersionError) return error.message;
    throw error;
  }
}

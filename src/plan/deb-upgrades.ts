import { field, parseRelations, type Relation } from '../distro/deb/control.js';
import type { InstalledPackage } from '../distro/deb/dpkg-database.js';
import type { AptRepositories, PackageCandidate } from '../distro/deb/repository/index.js';
import { compareDpkgVersions, satisfiesDpkgRelation } from '../versions/dpkg.js';
import type { HeldBackPackage, PatchPlan, PlannedPackage, UnavailableFix } from './types.js';

/** What to upgrade: everything with a newer version (Copa's no-report mode), or named packages with a minimum version. */
export type UpgradeRequest =
  | { readonly kind: 'all' }
  | { readonly kind: 'packages'; readonly packages: ReadonlyMap<string, { readonly fixedVersion?: string; readonly reasons: readonly string[] }> };

interface Member {
  readonly name: string;
  readonly architecture: string;
  readonly version: string;
  readonly provides: readonly Relation[];
  readonly depends: readonly Relation[][];
  readonly breaks: readonly Relation[];
}

/**
 * Resolves upgrades the way `apt-get upgrade` does: only installed packages
 * move, never a new install or a removal; every upgraded version's
 * Depends/Pre-Depends must be satisfied by the resulting set, and no Breaks or
 * Conflicts may hold in it. An upgrade that cannot be made consistent (even by
 * also upgrading what it needs) is held back and reported.
 */
export function resolveDebUpgrades(args: {
  readonly installed: readonly InstalledPackage[];
  readonly repositories: AptRepositories;
  readonly request: UpgradeRequest;
}): PatchPlan {
  const { installed, repositories, request } = args;
  const installedByName = new Map<string, InstalledPackage[]>();
  for (const pkg of installed) {
    const list = installedByName.get(pkg.name) ?? [];
    list.push(pkg);
    installedByName.set(pkg.name, list);
  }

  const candidateOf = new Map<InstalledPackage, PackageCandidate | undefined>();
  const candidate = (pkg: InstalledPackage): PackageCandidate | undefined => {
    if (!candidateOf.has(pkg)) candidateOf.set(pkg, newestCandidate(pkg, repositories));
    return candidateOf.get(pkg);
  };

  const upgrades = new Map<InstalledPackage, { candidate: PackageCandidate; reasons: string[] }>();
  const heldBack: HeldBackPackage[] = [];
  const unavailable: UnavailableFix[] = [];
  const held = new Set<InstalledPackage>();

  if (request.kind === 'all') {
    for (const pkg of installed) {
      if (pkg.status.startsWith('hold ')) continue;
      const c = candidate(pkg);
      if (c) upgrades.set(pkg, { candidate: c, reasons: [`newer version in ${suiteName(c)}`] });
    }
  } else {
    for (const [name, want] of request.packages) {
      const pkgs = installedByName.get(name);
      if (!pkgs) {
        unavailable.push({ name, reason: 'not installed as a Debian package in this image', ...(want.fixedVersion ? { fixedVersion: want.fixedVersion } : {}) });
        continue;
      }
      for (const pkg of pkgs) {
        const c = candidate(pkg);
        if (want.fixedVersion && compareDpkgVersions(pkg.version, want.fixedVersion) >= 0) continue; // already fixed
        if (!c) {
          unavailable.push({ name, installed: pkg.version, reason: 'no newer version in the image\'s apt sources', ...(want.fixedVersion ? { fixedVersion: want.fixedVersion } : {}) });
        } else if (want.fixedVersion && compareDpkgVersions(c.version, want.fixedVersion) < 0) {
          unavailable.push({ name, installed: pkg.version, fixedVersion: want.fixedVersion, reason: `newest available is ${c.version}` });
        } else {
          upgrades.set(pkg, { candidate: c, reasons: [...want.reasons] });
        }
      }
    }
  }

  // Fixpoint: pull in upgrades a new version needs, hold back what cannot be satisfied.
  for (let round = 0; round < 10_000; round++) {
    const members = resultSet(installed, upgrades);
    const problem = firstProblem(installed, upgrades, members, candidate, held);
    if (!problem) break;
    if (problem.kind === 'pull') {
      upgrades.set(problem.pkg, { candidate: problem.candidate, reasons: [`needed by ${problem.by}`] });
    } else {
      const entry = upgrades.get(problem.pkg)!;
      upgrades.delete(problem.pkg);
      held.add(problem.pkg);
      heldBack.push({ name: problem.pkg.name, from: problem.pkg.version, to: entry.candidate.version, reason: problem.reason });
    }
  }

  const packages: PlannedPackage[] = [...upgrades].map(([pkg, { candidate: c, reasons }]) => ({
    name: pkg.name,
    architecture: pkg.architecture,
    from: pkg.version,
    to: c.version,
    reasons,
    executor: 'deb-inprocess' as const,
    candidate: c,
  }));
  packages.sort((a, b) => a.name.localeCompare(b.name));
  return { packages, heldBack, unavailable };
}

function newestCandidate(pkg: InstalledPackage, repositories: AptRepositories): PackageCandidate | undefined {
  const usable = repositories.candidates(pkg.name).filter((c) =>
    (c.architecture === pkg.architecture || c.architecture === 'all' || pkg.architecture === 'all')
    // apt pins NotAutomatic suites (experimental, backports) below installed versions.
    && (!c.release.notAutomatic || c.release.butAutomaticUpgrades));
  let best: PackageCandidate | undefined;
  for (const c of usable) if (!best || compareDpkgVersions(c.version, best.version) > 0) best = c;
  return best && compareDpkgVersions(best.version, pkg.version) > 0 ? best : undefined;
}

function suiteName(c: PackageCandidate): string {
  return c.release.codename ?? c.release.suite ?? 'the image\'s apt sources';
}

function toMember(name: string, architecture: string, version: string, p: { fields: readonly (readonly [string, string])[] }): Member {
  const rel = (f: string) => parseRelations(field(p, f) ?? '');
  return {
    name,
    architecture,
    version,
    provides: rel('Provides').flat(),
    depends: [...rel('Pre-Depends'), ...rel('Depends')],
    breaks: [...rel('Breaks').flat(), ...rel('Conflicts').flat()],
  };
}

function resultSet(installed: readonly InstalledPackage[], upgrades: ReadonlyMap<InstalledPackage, { candidate: PackageCandidate }>): Map<InstalledPackage, Member> {
  const out = new Map<InstalledPackage, Member>();
  for (const pkg of installed) {
    const up = upgrades.get(pkg);
    out.set(pkg, up
      ? toMember(pkg.name, up.candidate.architecture, up.candidate.version, up.candidate.paragraph)
      : toMember(pkg.name, pkg.architecture, pkg.version, pkg.paragraph));
  }
  return out;
}

function matches(member: Member, rel: Relation): boolean {
  const name = rel.name;
  if (member.name === name && (!rel.op || !rel.version || satisfiesDpkgRelation(member.version, rel.op, rel.version))) return true;
  return member.provides.some((p) => p.name === name && (!rel.op || !rel.version
    || (p.op === '=' && p.version !== undefined && satisfiesDpkgRelation(p.version, rel.op, rel.version))));
}

type Problem =
  | { kind: 'pull'; pkg: InstalledPackage; candidate: PackageCandidate; by: string }
  | { kind: 'hold'; pkg: InstalledPackage; reason: string };

function firstProblem(
  installed: readonly InstalledPackage[],
  upgrades: ReadonlyMap<InstalledPackage, { candidate: PackageCandidate }>,
  members: ReadonlyMap<InstalledPackage, Member>,
  candidate: (pkg: InstalledPackage) => PackageCandidate | undefined,
  held: ReadonlySet<InstalledPackage>,
): Problem | undefined {
  // Index by name and provided name so each relation looks at a handful of members.
  const byName = new Map<string, Member[]>();
  const index = (name: string, m: Member) => { const l = byName.get(name); if (l) l.push(m); else byName.set(name, [m]); };
  for (const m of members.values()) {
    index(m.name, m);
    for (const p of m.provides) if (p.name !== m.name) index(p.name, m);
  }
  const satisfied = (group: readonly Relation[]) => group.some((rel) => (byName.get(rel.name) ?? []).some((m) => matches(m, rel)));

  for (const pkg of installed) {
    const member = members.get(pkg)!;
    // Dependencies: every package in the result set, since an upgrade can break an unchanged dependent.
    for (const group of member.depends) {
      if (satisfied(group)) continue;
      const fix = pullFor(group, installed, upgrades, candidate, held);
      if (fix) return { kind: 'pull', pkg: fix.pkg, candidate: fix.candidate, by: pkg.name };
      const culprit = upgrades.has(pkg) ? pkg : upgradeBreaking(group, installed, upgrades, members);
      if (culprit) return { kind: 'hold', pkg: culprit, reason: `${pkg.name} would have unmet dependency ${formatGroup(group)}` };
      // An unmet dependency the image already had is not ours to fix.
    }
    for (const rel of member.breaks) {
      const hits = byName.get(rel.name) ?? [];
      if (!hits.some((m) => m !== member && matches(m, rel))) continue;
      for (const [other, otherMember] of members) {
        if (other === pkg || otherMember.name === member.name || !matches(otherMember, rel)) continue;
        if (!upgrades.has(pkg) && !upgrades.has(other)) continue; // pre-existing, not ours
        const c = !upgrades.has(other) && !held.has(other) ? candidate(other) : undefined;
        if (c && !matches(toMember(other.name, c.architecture, c.version, c.paragraph), rel)) {
          return { kind: 'pull', pkg: other, candidate: c, by: pkg.name };
        }
        const culprit = upgrades.has(pkg) ? pkg : other;
        return { kind: 'hold', pkg: culprit, reason: `${member.name} ${member.version} breaks ${otherMember.name} ${otherMember.version}` };
      }
    }
  }
  return undefined;
}

/** An installed, not-yet-upgraded package whose newer version satisfies the group. */
function pullFor(
  group: readonly Relation[],
  installed: readonly InstalledPackage[],
  upgrades: ReadonlyMap<InstalledPackage, unknown>,
  candidate: (pkg: InstalledPackage) => PackageCandidate | undefined,
  held: ReadonlySet<InstalledPackage>,
): { pkg: InstalledPackage; candidate: PackageCandidate } | undefined {
  for (const rel of group) {
    for (const pkg of installed) {
      if (upgrades.has(pkg) || held.has(pkg)) continue;
      const c = candidate(pkg);
      if (c && matches(toMember(pkg.name, c.architecture, c.version, c.paragraph), rel)) return { pkg, candidate: c };
    }
  }
  return undefined;
}

/** The upgrade that made a previously satisfied group unsatisfied (it moved a version out of range). */
function upgradeBreaking(
  group: readonly Relation[],
  installed: readonly InstalledPackage[],
  upgrades: ReadonlyMap<InstalledPackage, unknown>,
  members: ReadonlyMap<InstalledPackage, Member>,
): InstalledPackage | undefined {
  for (const pkg of installed) {
    if (!upgrades.has(pkg)) continue;
    const before = toMember(pkg.name, pkg.architecture, pkg.version, pkg.paragraph);
    if (group.some((rel) => matches(before, rel)) && !group.some((rel) => matches(members.get(pkg)!, rel))) return pkg;
  }
  return undefined;
}

function formatGroup(group: readonly Relation[]): string {
  return group.map((r) => (r.op ? `${r.name} (${r.op} ${r.version})` : r.name)).join(' | ');
}

import type { InstalledPackage, OsInfo } from './inventory/types.js';
import type { OsvAffected, OsvDatabase, OsvEvent } from './sources/osv.js';
import { normaliseSeverity, type Finding } from './types.js';
import { compareVersions, type Ecosystem } from '../versions/index.js';

/** The OSV ecosystem (or prefix of it) advisories for this package are filed under; undefined when OSV has none. */
export function osvEcosystemFor(pkg: InstalledPackage, os: OsInfo | undefined): string | undefined {
  switch (pkg.ecosystem) {
    case 'pypi': return 'PyPI';
    case 'npm': return 'npm';
    case 'go': return 'Go';
    case 'nuget': return 'NuGet';
    case 'debian': {
      if (os?.id === 'ubuntu') return os.versionId ? `Ubuntu:${os.versionId}` : undefined;
      const major = os?.versionId?.split('.')[0];
      return major ? `Debian:${major}` : undefined;
    }
    case 'alpine': {
      const m = /^(\d+)\.(\d+)/.exec(os?.versionId ?? '');
      return m ? `Alpine:v${m[1]}.${m[2]}` : undefined;
    }
    case 'rpm': {
      const major = os?.versionId?.split('.')[0];
      if (!major) return undefined;
      if (os?.id === 'almalinux') return `AlmaLinux:${major}`;
      if (os?.id === 'rocky') return `Rocky Linux:${major}`;
      if (os?.id === 'rhel') return 'Red Hat';
      if (os?.id === 'opensuse-leap' || os?.id === 'sles') return undefined;
      return undefined;
    }
  }
}

/** Findings for every installed package an OSV record affects. */
export function matchOsv(packages: readonly InstalledPackage[], os: OsInfo | undefined, db: OsvDatabase): Finding[] {
  const findings: Finding[] = [];
  for (const pkg of packages) {
    // What python3-rpm installs is the rpm source package's code: its advisories come through the dpkg record, not PyPI's.
    if (pkg.distroOwned) continue;
    const ecosystem = osvEcosystemFor(pkg, os);
    if (!ecosystem) continue;
    // Distribution advisories are filed by source package; libraries by their own name.
    const names = new Set([pkg.sourceName ?? pkg.name, pkg.name]);
    const version = pkg.class === 'os' && pkg.sourceVersion && pkg.sourceName !== pkg.name ? pkg.sourceVersion : pkg.version;
    // One record may list a package once per release line (urllib3's 1.x and 2.x): judge them together.
    const byRecord = new Map<string, OsvAffected[]>();
    for (const name of names) {
      for (const affected of db.lookup(ecosystem, name)) {
        const list = byRecord.get(affected.id);
        if (list) { if (!list.includes(affected)) list.push(affected); } else byRecord.set(affected.id, [affected]);
      }
    }
    for (const [id, entries] of byRecord) {
      const results = entries.map((a) => evaluate(pkg.ecosystem, version, a));
      if (!results.some((r) => r.hit)) continue;
      const fixed = [...new Set(results.flatMap((r) => r.fixed))].sort((a, b) => safe(() => compareVersions(pkg.ecosystem, a, b), 0));
      const first = entries[0]!;
      findings.push({
        package: pkg, id, aliases: first.aliases, fixedVersions: fixed,
        severity: normaliseSeverity(first.severity), source: 'osv', ...(first.summary ? { summary: first.summary } : {}),
      });
    }
  }
  return findings;
}

/** OSV's evaluation: listed versions, then each ECOSYSTEM/SEMVER range's events in version order. */
export function evaluate(ecosystem: Ecosystem, version: string, affected: Pick<OsvAffected, 'ranges' | 'versions'>): { hit: boolean; fixed: string[] } {
  const compare = (a: string, b: string) => compareVersions(ecosystem, a, b);
  const fixedAbove = (events: readonly OsvEvent[]) => events.map((e) => e.fixed).filter((f): f is string => f !== undefined && safe(() => compare(f, version) > 0, false));
  let hit = affected.versions.some((v) => v === version || safe(() => compare(v, version) === 0, false));
  const fixes: string[] = [];
  for (const range of affected.ranges) {
    if (range.type !== 'ECOSYSTEM' && range.type !== 'SEMVER') continue;
    const events = range.events.map((e) => prefixEvent(e, range.type === 'SEMVER' && ecosystem === 'go' ? 'v' : ''));
    if (inRange(version, events, compare)) hit = true;
    // Every release line's fix above us is an option (1.26.17 and 2.0.6), as Trivy lists them; the planner picks.
    fixes.push(...fixedAbove(events));
  }
  return { hit, fixed: [...new Set(fixes)] };
}

function inRange(version: string, events: readonly OsvEvent[], compare: (a: string, b: string) => number): boolean {
  const at = (e: OsvEvent) => e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '0';
  const sorted = [...events].sort((a, b) => {
    const va = at(a);
    const vb = at(b);
    if (va === vb) return 0;
    if (va === '0') return -1;
    if (vb === '0') return 1;
    return safe(() => compare(va, vb), 0);
  });
  let affected = false;
  for (const e of sorted) {
    if (e.introduced !== undefined) {
      if (e.introduced === '0' || safe(() => compare(version, e.introduced!) >= 0, false)) affected = true;
    } else if (e.fixed !== undefined) {
      if (safe(() => compare(version, e.fixed!) >= 0, false)) affected = false;
    } else if (e.last_affected !== undefined) {
      if (safe(() => compare(version, e.last_affected!) > 0, false)) affected = false;
    } else if (e.limit !== undefined) {
      if (safe(() => compare(version, e.limit!) >= 0, false)) affected = false;
    }
  }
  return affected;
}

function prefixEvent(e: OsvEvent, prefix: string): OsvEvent {
  if (!prefix) return e;
  const p = (v: string | undefined) => (v === undefined || v === '0' || v.startsWith('v') ? v : `${prefix}${v}`);
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, p(v as string | undefined)])) as OsvEvent;
}

/** A version an advisory spells in a way our comparator rejects must not sink the whole scan. */
function safe<T>(fn: () => T, fallback: T): T {
  try { return fn(); } catch { return fallback; }
}

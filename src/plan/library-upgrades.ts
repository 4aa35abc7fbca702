import type { InstalledPackage } from '../scan/inventory/types.js';
import type { Finding } from '../scan/types.js';
import { compareVersions } from '../versions/index.js';
import { LibraryIndexError, type LibraryIndex } from './library-index.js';
import { goRebuildBlocker } from './go-toolchain.js';
import { combineChoices, type LibraryPatchLevel } from './library-level.js';
import type { PlannedLibrary, SkippedPackage } from './types.js';

/** .NET packages NuGet cannot take as PackageReference (the seeds' skip list). */
const dotnetSkipped = [
  { test: /^Microsoft\.Build(\.|$)/i, why: 'Microsoft.Build.* packages are SDK/build-time dependencies, not part of the deployed application' },
  { test: /^Microsoft\.(AspNetCore|NETCore|WindowsDesktop)\.App\.(Runtime|Ref|Host)(\.|$)/i, why: '.NET runtime/platform packs are part of the shared framework and cannot be a PackageReference (NU1213)' },
];

/**
 * Library findings → one target version per installed library, with the
 * seeds' semantics: the patch level bounds the bump, certifi always goes to
 * latest, npm and corepack are never touched, direct npm dependencies cannot
 * be patched by overrides, .NET SDK and platform packs are skipped, and a
 * version the package source does not publish is reported, not attempted.
 */
export async function planLibraryUpgrades(input: {
  findings: readonly Finding[];
  level: LibraryPatchLevel;
  index: LibraryIndex;
}): Promise<{ upgrades: PlannedLibrary[]; skipped: SkippedPackage[] }> {
  const groups = new Map<string, { pkg: InstalledPackage; findings: Finding[] }>();
  for (const f of input.findings) {
    if (f.package.class !== 'library') continue;
    const key = `${f.package.ecosystem}\0${f.package.name}\0${f.package.version}\0${f.package.location ?? ''}`;
    const group = groups.get(key);
    if (group) { if (!group.findings.some((g) => g.id === f.id)) group.findings.push(f); } else groups.set(key, { pkg: f.package, findings: [f] });
  }
  const upgrades: PlannedLibrary[] = [];
  const skipped: SkippedPackage[] = [];
  for (const { pkg, findings } of groups.values()) {
    const ids = findings.map((f) => f.id);
    const skip = (reason: string, findingIds = ids) => skipped.push({ ecosystem: pkg.ecosystem, name: pkg.name, version: pkg.version, path: pkg.path, reason, findings: findingIds });
    const rule = neverPatched(pkg);
    if (rule) { skip(rule); continue; }

    let target: string | undefined;
    let fixes = ids;
    let published;
    try {
      published = await input.index.versions(pkg.ecosystem, pkg.name);
    } catch (error) {
      skip(error instanceof LibraryIndexError ? error.message : `package source not reachable: ${(error as Error).message}`);
      continue;
    }
    if (pkg.ecosystem === 'pypi' && pkg.name === 'certifi') {
      // A CA bundle is only as good as its newest roots: latest, whatever the level.
      target = published.latest;
      if (!target || compareVersions('pypi', target, pkg.version) <= 0) { skip(`certifi: no version newer than ${pkg.version} on ${published.source}`); continue; }
    } else {
      const combined = combineChoices(pkg.ecosystem, pkg.version, findings.map((f) => ({ id: f.id, fixed: f.fixedVersions })), input.level);
      for (const b of combined.blocked) {
        skip(b.needed ? `needs ${b.needed}, a bigger change than --library-patch-level ${input.level} allows` : 'no fixed version is known', [b.id]);
      }
      if (!combined.target) continue;
      target = combined.target;
      fixes = combined.fixes;
    }
    const exists = published.versions.some((v) => v === target || safeEqual(pkg.ecosystem, v, target!));
    if (!exists) { skip(`fixed version ${target} is not published on ${published.source}`, fixes); continue; }
    upgrades.push({
      ecosystem: pkg.ecosystem, name: pkg.name, from: pkg.version, to: target, path: pkg.path,
      ...(pkg.location ? { location: pkg.location } : {}), reasons: fixes, executor: 'buildkit',
    });
  }
  const order = (a: { name: string; path: string }, b: { name: string; path: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { upgrades: upgrades.sort(order), skipped: skipped.sort(order) };
}

/** Why a library is never patched, or undefined. */
export function neverPatched(pkg: InstalledPackage): string | undefined {
  switch (pkg.ecosystem) {
    case 'npm':
      if (pkg.name === 'npm' || pkg.name === 'corepack') return `${pkg.name} is core Node.js tooling; patching it breaks npm itself, so it is never patched`;
      if (pkg.direct && !pkg.global) return `direct dependency of ${pkg.location ?? '.'}/package.json: npm overrides only patch transitive dependencies (EOVERRIDE); update package.json instead`;
      return undefined;
    case 'nuget':
      return dotnetSkipped.find((s) => s.test.test(pkg.name))?.why;
    case 'go':
      if (pkg.name === 'stdlib') return `Go standard library ${pkg.version} is compiled into ${pkg.path}: fixing it needs a rebuild with a newer Go toolchain (--toolchain-patch-level)`;
      // A binary built from a released module version is rebuilt from the module proxy's zip of it.
      return goRebuildBlocker(pkg);
    case 'pypi':
      if (/^usr\/lib\/python3[^/]*\/dist-packages$/.test(pkg.location ?? '')) return 'installed by the distribution package manager: patch the OS package instead';
      return undefined;
    default:
      return undefined;
  }
}

function safeEqual(ecosystem: InstalledPackage['ecosystem'], a: string, b: string): boolean {
  try { return compareVersions(ecosystem, a, b) === 0; } catch { return false; }
}

import { isSystemDistPackages, pythonPlacement } from '../scan/inventory/readers/python.js';
import type { InstalledPackage } from '../scan/inventory/types.js';
import type { Finding } from '../scan/types.js';
import { VersionError } from '../versions/errors.js';
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
 * Each place a library is installed is planned on its own (site-packages and
 * a venv, two deps.json side by side), and a version that cannot be read
 * costs only its own package or advisory, reported with why.
 */
export async function planLibraryUpgrades(input: {
  findings: readonly Finding[];
  level: LibraryPatchLevel;
  index: LibraryIndex;
}): Promise<{ upgrades: PlannedLibrary[]; skipped: SkippedPackage[] }> {
  const groups = new Map<string, { pkg: InstalledPackage; findings: Finding[] }>();
  for (const f of input.findings) {
    if (f.package.class !== 'library') continue;
    const p = f.package;
    const key = [p.ecosystem, p.name, p.version, p.path, p.location ?? ''].join('\0');
    const group = groups.get(key);
    if (group) { if (!group.findings.some((g) => g.id === f.id)) group.findings.push(f); } else groups.set(key, { pkg: p, findings: [f] });
  }
  const upgrades: PlannedLibrary[] = [];
  const skipped: SkippedPackage[] = [];
  for (const { pkg, findings } of groups.values()) {
    const ids = findings.map((f) => f.id);
    const skip = (reason: string, findingIds: readonly string[] = ids) => { skipped.push({ ecosystem: pkg.ecosystem, name: pkg.name, version: pkg.version, path: pkg.path, reason, findings: findingIds }); };
    const rule = neverPatched(pkg);
    if (rule) { skip(rule); continue; }
    try {
      const upgrade = await planOne(pkg, findings, input, skip);
      if (upgrade) upgrades.push(upgrade);
    } catch (error) {
      // A version some comparison could not read (an index's `latest`, say): this package only.
      if (!(error instanceof VersionError)) throw error;
      skip(`versions cannot be compared: ${error.message}`);
    }
  }
  const order = (a: { name: string; path: string }, b: { name: string; path: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { upgrades: upgrades.sort(order), skipped: skipped.sort(order) };
}

async function planOne(
  pkg: InstalledPackage,
  findings: readonly Finding[],
  input: { level: LibraryPatchLevel; index: LibraryIndex },
  skip: (reason: string, findingIds?: readonly string[]) => void,
): Promise<PlannedLibrary | undefined> {
  const lookup = async (ids: readonly string[]) => {
    try {
      return await input.index.versions(pkg.ecosystem, pkg.name);
    } catch (error) {
      skip(error instanceof LibraryIndexError ? error.message : `package source not reachable: ${(error as Error).message}`, ids);
      return undefined;
    }
  };
  let target: string;
  let fixes = findings.map((f) => f.id);
  let published;
  if (pkg.ecosystem === 'pypi' && pkg.name === 'certifi') {
    // A CA bundle is only as good as its newest roots: latest, whatever the level.
    published = await lookup(fixes);
    if (!published) return undefined;
    if (!published.latest || compareVersions('pypi', published.latest, pkg.version) <= 0) { skip(`certifi: no version newer than ${pkg.version} on ${published.source}`); return undefined; }
    target = published.latest;
  } else {
    const combined = combineChoices(pkg.ecosystem, pkg.version, findings.map((f) => ({ id: f.id, fixed: f.fixedVersions })), input.level);
    for (const b of combined.blocked) {
      skip(b.needed ? `needs ${b.needed}, a bigger change than --library-patch-level ${input.level} allows` : 'no fixed version is known', [b.id]);
    }
    for (const u of combined.unfixable ?? []) skip(u.reason, [u.id]);
    if (!combined.target) return undefined;
    target = combined.target;
    fixes = combined.fixes;
    // The package source is asked only about a version the plan would take.
    published = await lookup(fixes);
    if (!published) return undefined;
  }
  const exists = published.versions.some((v) => v === target || safeEqual(pkg.ecosystem, v, target));
  if (!exists) { skip(`fixed version ${target} is not published on ${published.source}`, fixes); return undefined; }
  return {
    ecosystem: pkg.ecosystem, name: pkg.name, from: pkg.version, to: target, path: pkg.path,
    ...(pkg.location ? { location: pkg.location } : {}), reasons: fixes, executor: 'buildkit',
  };
}

/** Why a library is never patched, or undefined. */
export function neverPatched(pkg: InstalledPackage): string | undefined {
  if (pkg.sourceManifest) {
    return `named by ${pkg.sourceManifest.file} (${pkg.sourceManifest.type}), a source manifest or lockfile, not an installed package: update it there and rebuild the image`;
  }
  switch (pkg.ecosystem) {
    case 'npm':
      if (pkg.name === 'npm' || pkg.name === 'corepack') return `${pkg.name} is core Node.js tooling; patching it breaks npm itself, so it is never patched`;
      if (pkg.direct && !pkg.global) return `direct dependency of ${pkg.location ?? '.'}/package.json: npm overrides only patch transitive dependencies (EOVERRIDE); update package.json instead`;
      return undefined;
    case 'nuget':
      return dotnetSkipped.find((s) => s.test.test(pkg.name))?.why;
    case 'go': {
      // A go.mod requirement is source: a Go toolchain moves it (go get, go mod tidy) in the module root.
      if (pkg.goOrigin === 'go.mod') {
        return pkg.goMod?.replaces ? `a replace directive in ${pkg.path} puts this module in place of ${pkg.goMod.replaces}: change the directive; patchd does not rewrite replacements` : undefined;
      }
      const revision = pkg.goBinary?.vcsRevision ? ` (revision ${pkg.goBinary.vcsRevision})` : '';
      if (pkg.name === 'stdlib') return `Go standard library ${pkg.version} is compiled into ${pkg.path}: fixing it needs a rebuild with a newer Go toolchain (--toolchain-patch-level)`;
      if (pkg.goMainModule) return `${pkg.path} is built from ${pkg.name} ${pkg.version} itself (its main module): fixing it needs the binary rebuilt from a fixed release${revision}`;
      // A binary built from a released module version is rebuilt from the module proxy's zip of it.
      return goRebuildBlocker(pkg);
    }
    case 'pypi': {
      if (pkg.distroOwned || isSystemDistPackages(pkg.location ?? '')) return 'installed by the distribution package manager: patch the OS package instead';
      // pip would install a second, top-level copy and leave the one the parent imports as it was.
      const parent = pkg.vendoredIn ?? pythonPlacement(pkg.path)?.vendoredIn;
      if (parent) return `vendored inside ${parent}: upgrade ${parent}`;
      return undefined;
    }
    default:
      return undefined;
  }
}

function safeEqual(ecosystem: InstalledPackage['ecosystem'], a: string, b: string): boolean {
  try { return compareVersions(ecosystem, a, b) === 0; } catch { return false; }
}

import type { InstalledPackage } from '../scan/inventory/types.js';
import type { Finding } from '../scan/types.js';
import { LibraryIndexError, type LibraryIndex } from './library-index.js';
import type { LibraryPatchLevel } from './library-level.js';
import type { PlannedLibrary, SkippedPackage } from './types.js';

/**
 * Why the modules compiled into a Go binary cannot be fixed by rebuilding
 * it, or undefined when they can: the binary must name a released main
 * module with the h1: sum of its zip (what `go install m@v` records), so the
 * module proxy serves its exact source. A `go build` of a checkout records
 * `(devel)` or a VCS-stamped pseudo-version and no sum: there is nothing
 * to fetch, whatever its vcs.revision says.
 */
export function goRebuildBlocker(pkg: InstalledPackage): string | undefined {
  const b = pkg.goBinary;
  if (b?.mainSum && b.mainVersion && b.mainVersion !== '(devel)') return undefined;
  const built = b?.mainVersion && b.mainVersion !== '(devel)' ? `${b.mainModule} ${b.mainVersion}` : `${b?.mainModule ?? 'its main module'} (devel)`;
  const checkout = b?.vcsRevision ? `, a VCS checkout at revision ${b.vcsRevision}${b.vcsModified ? ' with local changes' : ''}` : '';
  return `compiled into ${pkg.path}, which cannot be rebuilt from a released module version: it was built from ${built}${checkout}, which the module proxy does not serve`;
}

/** A Go release as GOTOOLCHAIN names them (1.22.5), from golang.org/toolchain's versions (v0.0.1-go1.22.5.linux-amd64). */
interface Release { readonly major: number; readonly minor: number; readonly patch: number }

const toolchainModule = 'golang.org/toolchain';

function release(version: string): Release | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(version.replace(/^go/, ''));
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) } : undefined;
}

const order = (a: Release, b: Release) => a.major - b.major || a.minor - b.minor || a.patch - b.patch;
const spell = (r: Release) => `${r.major}.${r.minor}.${r.patch}`;

/**
 * Copa's --toolchain-patch-level for the stdlib findings of Go binaries:
 * each binary whose Go release has findings is rebuilt with the newest Go
 * release the level allows (patch: the same minor line, 1.23.0 → 1.23.10;
 * minor: the same major; major: any), provided that release fixes them; the
 * releases are those the module proxy serves as toolchains, so the rebuild
 * can fetch it (GOTOOLCHAIN=go1.x.y). Findings it cannot fix within the
 * level stay skipped, with why. Takes the plan planLibraryUpgrades made (which
 * skips every stdlib finding) and returns it with stdlib decided.
 */
export async function planGoToolchains(input: {
  findings: readonly Finding[];
  level: LibraryPatchLevel;
  index: LibraryIndex;
  planned: { upgrades: PlannedLibrary[]; skipped: SkippedPackage[] };
}): Promise<{ upgrades: PlannedLibrary[]; skipped: SkippedPackage[] }> {
  const stdlib = input.findings.filter((f) => f.package.ecosystem === 'go' && f.package.class === 'library' && f.package.name === 'stdlib');
  if (stdlib.length === 0) return input.planned;
  const binaries = new Map<string, { pkg: InstalledPackage; findings: Finding[] }>();
  for (const f of stdlib) {
    const group = binaries.get(f.package.path);
    if (group) { if (!group.findings.some((g) => g.id === f.id)) group.findings.push(f); } else binaries.set(f.package.path, { pkg: f.package, findings: [f] });
  }
  const upgrades = [...input.planned.upgrades];
  const skipped = input.planned.skipped.filter((s) => !(s.ecosystem === 'go' && s.name === 'stdlib' && binaries.has(s.path)));
  let releases: Release[] | undefined;
  let unreachable: string | undefined;
  try {
    const published = await input.index.versions('go', toolchainModule);
    const seen = new Map<string, Release>();
    for (const v of published.versions) {
      const m = /^v0\.0\.1-go(\d+\.\d+(?:\.\d+)?)\.[a-z0-9]+-[a-z0-9]+$/.exec(v);
      const r = m ? release(m[1]!) : undefined;
      if (r) seen.set(spell(r), r);
    }
    releases = [...seen.values()].sort(order);
  } catch (error) {
    unreachable = error instanceof LibraryIndexError ? error.message : `module proxy not reachable: ${(error as Error).message}`;
  }
  for (const { pkg, findings } of binaries.values()) {
    const ids = findings.map((f) => f.id);
    const skip = (reason: string, findingIds: readonly string[] = ids) => { skipped.push({ ecosystem: 'go', name: 'stdlib', version: pkg.version, path: pkg.path, reason, findings: findingIds }); };
    const blocker = goRebuildBlocker(pkg);
    if (blocker) { skip(`Go standard library ${pkg.version} is ${blocker}`); continue; }
    if (!releases) { skip(`Go toolchains cannot be listed: ${unreachable}`); continue; }
    const current = release(pkg.version);
    if (!current) { skip(`Go ${pkg.version} is not a release patchd can compare`); continue; }
    const within = releases.filter((r) => order(r, current) > 0 && r.major === current.major && (input.level !== 'patch' || r.minor === current.minor));
    const allowed = input.level === 'major' ? releases.filter((r) => order(r, current) > 0) : within;
    const target = allowed.at(-1);
    const fixedBy = (f: Finding, r: Release) => f.fixedVersions.map(release).some((v) => v !== undefined && order(v, current) > 0 && order(v, r) <= 0);
    const fixes = target ? findings.filter((f) => fixedBy(f, target)) : [];
    for (const f of findings.filter((x) => !fixes.includes(x))) {
      const needed = f.fixedVersions.map(release).filter((v): v is Release => v !== undefined && order(v, current) > 0).sort(order)[0];
      skip(needed ? `needs Go ${spell(needed)}, ${target ? `beyond Go ${spell(target)}, the newest release ` : 'a bigger change than '}--toolchain-patch-level ${input.level} allows` : 'no fixed Go release is known', [f.id]);
    }
    if (!target || fixes.length === 0) continue;
    upgrades.push({
      ecosystem: 'go', name: 'stdlib', from: pkg.version, to: `v${spell(target)}`, path: pkg.path,
      ...(pkg.location ? { location: pkg.location } : {}), reasons: fixes.map((f) => f.id), executor: 'buildkit',
    });
  }
  const byName = (a: { name: string; path: string }, b: { name: string; path: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { upgrades: upgrades.sort(byName), skipped: skipped.sort(byName) };
}

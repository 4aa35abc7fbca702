import type { ArchiveMirror } from '../../distro/deb/repository/mirrors.js';
import { planRepoMirrors, readRpmRepos, repoDirs, type RpmMirror } from '../../distro/rpm/repos.js';
import type { ImageFilesystem } from '../../image/filesystem.js';
import type { Layer } from '../../image/layer.js';
import type { InstalledPackage, Inventory } from '../../scan/inventory/types.js';
import { scanLayers } from '../../scan/scan.js';
import type { Finding } from '../../scan/types.js';
import { compareVersions } from '../../versions/index.js';
import { BuildkitError } from './errors.js';
import { buildPatchLayer, type BuildkitRun } from './executor.js';
import { image } from './llb.js';
import { rpmInImage, rpmWithTooling, type RpmTool } from './strategies/rpm.js';
import { distrolessWithTooling } from './strategies/distroless.js';

const toolPaths: readonly [RpmTool, string][] = [
  ['dnf', 'usr/bin/dnf'], ['microdnf', 'usr/bin/microdnf'], ['tdnf', 'usr/bin/tdnf'], ['yum', 'usr/bin/yum'], ['zypper', 'usr/bin/zypper'],
];

export interface RpmUpgrade { readonly name: string; readonly from: string; readonly to: string }

/**
 * Patches an image with an rpm database through BuildKit: with the image's
 * own package manager when it has one, else with a dnf tooling image working
 * on it from outside. `request` is the packages findings name ('all' when no
 * advisory data speaks for the OS: every available update). The result is
 * verified by reading the rpm database the patch layer carries.
 */
export async function patchRpmImage(args: {
  run: BuildkitRun;
  fs: ImageFilesystem;
  inventory: Inventory;
  request: readonly Finding[] | 'all';
  toolingImage?: string;
  mediaType: string;
  /** Registry policy: fetch through these instead of the repositories' own URLs (the image's repo files are not changed). */
  mirrors?: readonly RpmMirror[];
}): Promise<{ layer?: Layer & { readonly diffId: string }; upgraded: RpmUpgrade[]; tool: string }> {
  const names = args.request === 'all' ? 'all' as const : [...new Set(args.request.filter((f) => f.package.ecosystem === 'rpm' && f.fixedVersions.length > 0).map((f) => f.package.name))].sort();
  if (names !== 'all' && names.length === 0) return { upgraded: [], tool: 'none' };
  const tool = toolPaths.find(([, path]) => args.fs.stat(path)?.type === 'file')?.[0];
  if (!tool && !args.toolingImage) {
    throw new BuildkitError('EXECUTOR_UNSUPPORTED', 'the image has an rpm database but no dnf, microdnf, tdnf, yum or zypper: configure an rpm tooling image (--tooling-image, or buildkit.toolingImages.rpm)');
  }
  const releasever = args.inventory.os?.versionId?.split('.')[0] ?? '1';
  const dbFile = args.inventory.packages.find((p) => p.ecosystem === 'rpm')?.path ?? 'var/lib/rpm/rpmdb.sqlite';
  const dbpath = `/${dbFile.slice(0, dbFile.lastIndexOf('/'))}`;
  const mirrors = args.mirrors && args.mirrors.length > 0
    ? await readRpmRepos(args.fs, tool === 'zypper' ? repoDirs.zypper : repoDirs.dnf).then(({ repos, files }) => planRepoMirrors(repos, files, args.mirrors!))
    : undefined;
  const layer = await buildPatchLayer(args.run, (base) => (tool
    ? rpmInImage(base, tool, names, mirrors)
    : rpmWithTooling(base, image(args.toolingImage!, { platform: args.run.platform, name: `pull tooling ${args.toolingImage}` }), names, releasever, dbpath, mirrors)), args.mediaType);

  // What the rpm database says now: the layer carries the whole rewritten database.
  const after = (await scanLayers([layer])).inventory.packages.filter((p) => p.ecosystem === 'rpm');
  if (after.length === 0) throw new BuildkitError('VERIFY_FAILED', 'the patch layer carries no rpm database: nothing was installed');
  const before = new Map(args.inventory.packages.filter((p) => p.ecosystem === 'rpm').map((p) => [`${p.name}.${p.architecture}`, p]));
  const upgraded: RpmUpgrade[] = [];
  for (const p of after) {
    const old = before.get(`${p.name}.${p.architecture}`);
    if (old && old.version !== p.version) upgraded.push({ name: p.name, from: old.version, to: p.version });
  }
  if (args.request !== 'all') verifyFixed(args.request, after);
  return { ...(upgraded.length > 0 ? { layer } : {}), upgraded: upgraded.sort((a, b) => a.name.localeCompare(b.name)), tool: tool ?? `tooling image ${args.toolingImage}` };
}

/** Every finding's package must now be at or above a version that fixes it (as Copa checks after installing). */
function verifyFixed(findings: readonly Finding[], after: readonly InstalledPackage[]): void {
  for (const f of findings) {
    if (f.package.ecosystem !== 'rpm' || f.fixedVersions.length === 0) continue;
    const now = after.find((p) => p.name === f.package.name && p.architecture === f.package.architecture);
    const fixed = f.fixedVersions[0]!;
    if (!now || compareVersions('rpm', now.version, fixed) < 0) {
      throw new BuildkitError('VERIFY_FAILED', `${f.package.name}: ${f.id} needs ${fixed}, the package manager left ${now?.version ?? 'nothing'}`);
    }
  }
}

/**
 * Patches a distroless Debian image (status.d/, no apt, no shell) through
 * BuildKit with a Debian tooling image; what changed is read back from the
 * status.d records the patch layer carries, and checked against the findings.
 */
export async function patchDistrolessImage(args: {
  run: BuildkitRun;
  inventory: Inventory;
  request: readonly Finding[] | 'all';
  toolingImage: string;
  nativeArchitecture: string;
  mediaType: string;
  /** Registry policy: the tooling's apt fetches through these. */
  mirrors?: readonly ArchiveMirror[];
}): Promise<{ layer?: Layer & { readonly diffId: string }; upgraded: (RpmUpgrade & { architecture: string })[] }> {
  const pins = args.request === 'all' ? 'all' as const
    : [...new Map(args.request.filter((f) => f.package.ecosystem === 'debian' && f.fixedVersions.length > 0).map((f) => [f.package.name, { name: f.package.name, version: '', architecture: f.package.architecture ?? '' }])).values()];
  if (pins !== 'all' && pins.length === 0) return { upgraded: [] };
  const layer = await buildPatchLayer(args.run, (base) => distrolessWithTooling(base, image(args.toolingImage, { platform: args.run.platform, name: `pull tooling ${args.toolingImage}` }), pins, args.nativeArchitecture, args.mirrors), args.mediaType);
  const after = (await scanLayers([layer])).inventory.packages.filter((p) => p.ecosystem === 'debian');
  const before = new Map(args.inventory.packages.filter((p) => p.ecosystem === 'debian').map((p) => [`${p.name}:${p.architecture}`, p]));
  const upgraded = after.flatMap((p) => {
    const old = before.get(`${p.name}:${p.architecture}`);
    return old && old.version !== p.version ? [{ name: p.name, architecture: p.architecture ?? '', from: old.version, to: p.version }] : [];
  }).sort((a, b) => a.name.localeCompare(b.name));
  if (args.request !== 'all') {
    for (const f of args.request) {
      if (f.package.ecosystem !== 'debian' || f.fixedVersions.length === 0) continue;
      const now = after.find((p) => p.name === f.package.name) ?? f.package;
      if (compareVersions('debian', now.version, f.fixedVersions[0]!) < 0) throw new BuildkitError('VERIFY_FAILED', `${f.package.name}: ${f.id} needs ${f.fixedVersions[0]}, the tooling's apt installed ${now.version}`);
    }
  }
  return { ...(upgraded.length > 0 ? { layer } : {}), upgraded };
}

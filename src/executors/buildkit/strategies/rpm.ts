import type { RepoMirrorPlan } from '../../../distro/rpm/repos.js';
import { BuildkitError } from '../errors.js';
import { scratchFile, type LlbState, type RunSpec } from '../llb.js';

/** Package managers of RPM-based images (dnf family) and SUSE (zypper). */
export type RpmTool = 'dnf' | 'microdnf' | 'tdnf' | 'yum' | 'zypper';

/** Where each tool keeps its downloads: a cache mount, never part of the patch layer. */
const cacheDir: Record<RpmTool, string> = {
  dnf: '/var/cache/dnf', microdnf: '/var/cache/yum', tdnf: '/var/cache/tdnf', yum: '/var/cache/yum', zypper: '/var/cache/zypp',
};
const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C'];

function checkNames(names: readonly string[]): void {
  for (const n of names) if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(n)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(n)} to the package manager`);
}

/** Where zypper reads the rewritten repo files from: a read-only mount, never part of the image. */
const mirroredReposDir = '/run/patchd-repos.d';

/**
 * dnf family: each mirrored repository's URLs as options of this run only
 * (`--setopt=<id>.baseurl=...`); the image's repo files stay as they are, and
 * so does their gpgcheck.
 */
export function repoSetopts(mirrors: RepoMirrorPlan | undefined): string[] {
  const out: string[] = [];
  for (const o of mirrors?.overrides ?? []) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(o.id)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing repository id ${JSON.stringify(o.id)}`);
    for (const url of [...o.baseurls, o.mirrorlist ?? '', o.metalink ?? ''].filter(Boolean)) checkUrl(url);
    if (o.baseurls.length > 0) out.push(`--setopt=${o.id}.baseurl=${o.baseurls.join(',')}`);
    if (o.mirrorlist !== undefined) out.push(`--setopt=${o.id}.mirrorlist=${o.mirrorlist}`);
    if (o.metalink !== undefined) out.push(`--setopt=${o.id}.metalink=${o.metalink}`);
  }
  return out;
}

function checkUrl(url: string): void {
  // dnf's own variables ($releasever, $basearch) stay in; nothing that could end an option or a line.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[A-Za-z0-9._~:/?#[\]@!$&'()*+;=%-]+$/.test(url) || url.includes(',')) {
    throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing mirror URL ${JSON.stringify(url)}`);
  }
}

/** The refresh and upgrade commands of each tool; `packages: 'all'` upgrades everything (no report). */
export function rpmCommands(tool: RpmTool, packages: readonly string[] | 'all', mirrors?: RepoMirrorPlan): { refresh: string[]; upgrade: string[] } {
  const names = packages === 'all' ? [] : [...packages];
  checkNames(names);
  const mirrored = mirrors && mirrors.overrides.length > 0 ? mirrors : undefined;
  switch (tool) {
    case 'zypper': {
      if (mirrored) repoSetopts(mirrored); // validates every URL the rewritten files carry
      const global = ['--non-interactive', ...(mirrored ? ['--reposd-dir', mirroredReposDir] : [])];
      return { refresh: ['zypper', ...global, 'refresh'], upgrade: ['zypper', ...global, 'update', '--no-recommends', ...names] };
    }
    case 'microdnf': {
      const setopts = repoSetopts(mirrored);
      return { refresh: ['microdnf', ...setopts, 'makecache'], upgrade: ['microdnf', '-y', '--setopt=install_weak_deps=0', ...setopts, 'upgrade', ...names] };
    }
    default: {
      const setopts = repoSetopts(mirrored);
      return { refresh: [tool, ...setopts, 'makecache'], upgrade: [tool, '-y', '--setopt=install_weak_deps=False', ...setopts, 'upgrade', ...names] };
    }
  }
}

/**
 * The image carries its package manager: refresh, then upgrade, both inside
 * it; the layer is the upgrade. With mirrors, the metadata cache is one per
 * mapping, and zypper reads rewritten repo files from a read-only mount.
 */
export function rpmInImage(base: LlbState, tool: RpmTool, packages: readonly string[] | 'all', mirrors?: RepoMirrorPlan): { lower: LlbState; upper: LlbState } {
  const { refresh, upgrade } = rpmCommands(tool, packages, mirrors);
  const mirrored = mirrors && mirrors.overrides.length > 0 ? mirrors : undefined;
  const mounts: NonNullable<RunSpec['mounts']>[number][] = [{ kind: 'cache', dest: cacheDir[tool], id: `patchd-${tool}-cache${mirrored ? `-${mirrored.key}` : ''}`, sharing: 'locked' }];
  if (mirrored && tool === 'zypper') mounts.push({ kind: 'bind', dest: mirroredReposDir, state: repoFilesState(mirrored), readonly: true });
  const lower = base.run({ args: refresh, env, mounts, name: refresh.join(' ') });
  const upper = lower.run({ args: upgrade, env, mounts, name: upgrade.join(' ') });
  return { lower, upper };
}

function repoFilesState(mirrors: RepoMirrorPlan): LlbState {
  const files = mirrors.rewrittenFiles;
  for (const f of files) if (!/^[A-Za-z0-9][A-Za-z0-9._:@+-]*\.repo$/.test(f.name)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing repo file name ${JSON.stringify(f.name)}`);
  let state = scratchFile(`/${files[0]!.name}`, files[0]!.text, 'mirrored repositories');
  for (const f of files.slice(1)) state = state.mkfile(`/${f.name}`, 0o644, f.text, 'mirrored repositories');
  return state;
}

/**
 * The image has an rpm database but no package manager (distroless, or a
 * root made with --installroot): a tooling image's dnf works on it, mounted
 * at /target, with its repositories (the target's /etc/yum.repos.d) and its
 * metadata cache outside the target, so the layer holds only the upgrade.
 */
export function rpmWithTooling(target: LlbState, tooling: LlbState, packages: readonly string[] | 'all', releasever: string, dbpath: string, mirrors?: RepoMirrorPlan): { lower: LlbState; upper: LlbState } {
  const names = packages === 'all' ? [] : [...packages];
  checkNames(names);
  if (!/^[A-Za-z0-9._-]+$/.test(releasever)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing releasever ${JSON.stringify(releasever)}`);
  if (!/^\/[A-Za-z0-9._/-]+$/.test(dbpath)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing rpm dbpath ${JSON.stringify(dbpath)}`);
  // The tooling's rpm must use the target's database location (Debian's rpm defaults to ~/.rpmdb).
  const configured = tooling.mkfile('/root/.rpmmacros', 0o644, `%_dbpath ${dbpath}\n`, 'rpm dbpath for the target');
  // dnf puts its cachedir under the installroot: the metadata goes in and is removed in the same exec, so the layer never holds it.
  const dnf = ['dnf', '-y', '--installroot=/target', `--releasever=${releasever}`, '--setopt=cachedir=/var/cache/patchd-dnf', '--setopt=install_weak_deps=False', '--setopt=reposdir=/target/etc/yum.repos.d', ...repoSetopts(mirrors), 'upgrade', ...names];
  const run = configured.run({
    args: ['/bin/sh', '-c', 'set -e; "$@"; rm -rf /target/var/cache/patchd-dnf', 'patchd', ...dnf],
    env: [...env, 'HOME=/root'], name: `dnf --installroot upgrade ${names.join(' ') || '(all)'}`,
    mounts: [{ kind: 'bind', dest: '/target', state: target }],
  });
  return { lower: target, upper: run.mountOutput('/target') };
}

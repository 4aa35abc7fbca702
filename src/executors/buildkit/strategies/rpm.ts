import { BuildkitError } from '../errors.js';
import type { LlbState } from '../llb.js';

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

/** The refresh and upgrade commands of each tool; `packages: 'all'` upgrades everything (no report). */
export function rpmCommands(tool: RpmTool, packages: readonly string[] | 'all'): { refresh: string[]; upgrade: string[] } {
  const names = packages === 'all' ? [] : [...packages];
  checkNames(names);
  switch (tool) {
    case 'zypper':
      return { refresh: ['zypper', '--non-interactive', 'refresh'], upgrade: ['zypper', '--non-interactive', 'update', '--no-recommends', ...names] };
    case 'microdnf':
      return { refresh: ['microdnf', 'makecache'], upgrade: ['microdnf', '-y', '--setopt=install_weak_deps=0', 'upgrade', ...names] };
    default:
      return { refresh: [tool, 'makecache'], upgrade: [tool, '-y', '--setopt=install_weak_deps=False', 'upgrade', ...names] };
  }
}

/** The image carries its package manager: refresh, then upgrade, both inside it; the layer is the upgrade. */
export function rpmInImage(base: LlbState, tool: RpmTool, packages: readonly string[] | 'all'): { lower: LlbState; upper: LlbState } {
  const { refresh, upgrade } = rpmCommands(tool, packages);
  const mounts = [{ kind: 'cache' as const, dest: cacheDir[tool], id: `patchd-${tool}-cache`, sharing: 'locked' as const }];
  const lower = base.run({ args: refresh, env, mounts, name: refresh.join(' ') });
  const upper = lower.run({ args: upgrade, env, mounts, name: upgrade.join(' ') });
  return { lower, upper };
}

/**
 * The image has an rpm database but no package manager (distroless, or a
 * root made with --installroot): a tooling image's dnf works on it, mounted
 * at /target, with its repositories (the target's /etc/yum.repos.d) and its
 * metadata cache outside the target, so the layer holds only the upgrade.
 */
export function rpmWithTooling(target: LlbState, tooling: LlbState, packages: readonly string[] | 'all', releasever: string, dbpath: string): { lower: LlbState; upper: LlbState } {
  const names = packages === 'all' ? [] : [...packages];
  checkNames(names);
  if (!/^[A-Za-z0-9._-]+$/.test(releasever)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing releasever ${JSON.stringify(releasever)}`);
  if (!/^\/[A-Za-z0-9._/-]+$/.test(dbpath)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing rpm dbpath ${JSON.stringify(dbpath)}`);
  // The tooling's rpm must use the target's database location (Debian's rpm defaults to ~/.rpmdb).
  const configured = tooling.mkfile('/root/.rpmmacros', 0o644, `%_dbpath ${dbpath}\n`, 'rpm dbpath for the target');
  // dnf puts its cachedir under the installroot: the metadata goes in and is removed in the same exec, so the layer never holds it.
  const dnf = ['dnf', '-y', '--installroot=/target', `--releasever=${releasever}`, '--setopt=cachedir=/var/cache/patchd-dnf', '--setopt=install_weak_deps=False', '--setopt=reposdir=/target/etc/yum.repos.d', 'upgrade', ...names];
  const run = configured.run({
    args: ['/bin/sh', '-c', 'set -e; "$@"; rm -rf /target/var/cache/patchd-dnf', 'patchd', ...dnf],
    env: [...env, 'HOME=/root'], name: `dnf --installroot upgrade ${names.join(' ') || '(all)'}`,
    mounts: [{ kind: 'bind', dest: '/target', state: target }],
  });
  return { lower: target, upper: run.mountOutput('/target') };
}

import { BuildkitError } from '../errors.js';
import type { LlbState } from '../llb.js';

export interface PackagePin {
  readonly name: string;
  readonly version: string;
  /** dpkg architecture; foreign (multiarch) packages are named name:arch. */
  readonly architecture?: string;
}

const aptEnv = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'DEBIAN_FRONTEND=noninteractive', 'LC_ALL=C'];
// apt's downloads and binary caches live in a cache mount: never in the patch layer.
const aptCache = { kind: 'cache', dest: '/var/cache/apt', id: 'patchd-apt-cache', sharing: 'locked' } as const;

/**
 * Debian/Ubuntu images with apt: refresh the indexes, then install exactly
 * the planned versions in one apt transaction (maintainer scripts run, as
 * apt runs them, with --force-confold as `apt-get upgrade` keeps conffiles).
 * The patch layer is the difference between the two states: the install,
 * not the index refresh.
 */
export function aptInstall(base: LlbState, packages: readonly PackagePin[], nativeArchitecture: string): { lower: LlbState; upper: LlbState } {
  const lower = base.run({
    args: ['/bin/sh', '-c', 'apt-get update -q'],
    env: aptEnv, mounts: [aptCache], name: 'apt-get update',
  });
  const pins = packages.map((p) => `${p.name}${p.architecture && p.architecture !== 'all' && p.architecture !== nativeArchitecture ? `:${p.architecture}` : ''}=${p.version}`);
  for (const pin of pins) {
    if (!/^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?=[A-Za-z0-9.+~:-]+$/.test(pin)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(pin)} to apt-get`);
  }
  const upper = lower.run({
    args: ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef', ...pins],
    env: aptEnv, mounts: [aptCache], name: `apt-get install ${pins.join(' ')}`,
  });
  return { lower, upper };
}

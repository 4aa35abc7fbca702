import { createHash } from 'node:crypto';
import { BuildkitError } from '../errors.js';
import { scratchFile, type LlbState, type RunSpec } from '../llb.js';

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
export function aptInstall(base: LlbState, packages: readonly PackagePin[], nativeArchitecture: string, mirrored?: MirroredSources): { lower: LlbState; upper: LlbState } {
  const { options, mounts } = mirrorRun(mirrored);
  const lower = base.run({
    args: ['apt-get', ...options, 'update', '-q'],
    env: aptEnv, mounts, name: 'apt-get update',
  });
  const pins = packages.map((p) => `${p.name}${p.architecture && p.architecture !== 'all' && p.architecture !== nativeArchitecture ? `:${p.architecture}` : ''}=${p.version}`);
  for (const pin of pins) {
    if (!/^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?=[A-Za-z0-9.+~:-]+$/.test(pin)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(pin)} to apt-get`);
  }
  const upper = lower.run({
    args: ['apt-get', ...options, 'install', '-y', '-q', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef', ...pins],
    env: aptEnv, mounts, name: `apt-get install ${pins.join(' ')}`,
  });
  return { lower, upper };
}

/** The image's sources with mirrored URIs (deb822, from `mirroredSourcesFile`). */
export interface MirroredSources {
  readonly text: string;
  /** Some mirror needs credentials. */
  readonly credentials: boolean;
}

/** Where apt reads the mirrored sources from: a read-only mount, so the image's own sources files stay as they are. */
const mirroredDir = '/run/patchd-apt-sources';

/**
 * apt pointed at the mirrored sources for this run only (Dir::Etc::SourceList
 * and SourceParts); the package cache is one per mapping. Credentials are not
 * passed: they would be part of the build definition BuildKit keeps.
 */
function mirrorRun(mirrored: MirroredSources | undefined): { options: string[]; mounts: NonNullable<RunSpec['mounts']>[number][] } {
  if (!mirrored) return { options: [], mounts: [aptCache] };
  if (mirrored.credentials) throw new BuildkitError('EXECUTOR_UNSUPPORTED', 'apt mirrors with credentials are used by the in-process executor only: BuildKit would keep them in its build definition');
  for (const line of mirrored.text.split('\n')) {
    if (/[\x00-\x08\x0b-\x1f\x7f]/.test(line)) throw new BuildkitError('BUILD_REQUEST_INVALID', 'refusing a sources file with control characters');
  }
  const key = createHash('sha256').update(mirrored.text).digest('hex').slice(0, 16);
  const files = scratchFile('/patchd.sources', mirrored.text, 'mirrored apt sources').mkfile('/none.list', 0o644, '', 'mirrored apt sources');
  return {
    options: ['-o', `Dir::Etc::SourceList=${mirroredDir}/none.list`, '-o', `Dir::Etc::SourceParts=${mirroredDir}`],
    mounts: [{ ...aptCache, id: `${aptCache.id}-${key}` }, { kind: 'bind', dest: mirroredDir, state: files, readonly: true }],
  };
}

import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../../../lib/log.js';
import { verifyingStream } from '../../../oci/verify.js';
import { compareDpkgVersions } from '../../../versions/dpkg.js';
import { field, type Paragraph } from '../control.js';
import { AptError } from './errors.js';
import { bodyThrough, fetchWithRetries } from './http.js';
import { loadKeyring } from './keyring.js';
import { mirroredUri, type ArchiveMirror } from './mirrors.js';
import { loadPackagesIndex } from './packages-index.js';
import { fetchRelease, type Release } from './release.js';
import type { AptSource, RootReader } from './sources.js';

export { AptError } from './errors.js';
export { readAptSources, type AptSource, type RootReader } from './sources.js';
export { mirroredSourcesFile, mirroredUri, type ArchiveMirror, type MirroredUri } from './mirrors.js';

export interface PackageCandidate {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly multiArch?: string;
  readonly filename: string;
  readonly size: number;
  readonly sha256: string;
  /** The Packages stanza (the fields the planner uses). */
  readonly paragraph: Paragraph;
  readonly url: string;
  readonly release: { origin?: string; label?: string; suite?: string; codename?: string; notAutomatic: boolean; butAutomaticUpgrades: boolean };
}

export interface AptRepositories {
  /** Every version of the package across the sources, newest first (within `wanted`, when given). */
  candidates(name: string): readonly PackageCandidate[];
  /** The .deb, verified against Size and SHA256 from Packages while it streams. */
  openDeb(candidate: PackageCandidate): Promise<Readable>;
  readonly stats: { bytesDownloaded: number; indexCacheHits: number; indexFetches: number };
}

/**
 * The image's own package repositories, as apt would see them: every source's
 * InRelease verified with the image's keyring, every index checked against
 * InRelease. `wanted` limits what is kept in memory (the installed names).
 */
export async function loadAptRepositories(args: {
  readonly root: RootReader;
  readonly sources: readonly AptSource[];
  readonly architectures: readonly string[];
  readonly dispatcher: Dispatcher;
  readonly cacheDir: string;
  readonly logger: Logger;
  readonly now?: Date;
  /** Package names worth keeping (an upgrade only ever needs the installed ones); default all. */
  readonly wanted?: (name: string) => boolean;
  /**
   * Where to fetch from instead of the sources' own URIs (registry policy):
   * trust does not move with them, InRelease is still verified with the
   * image's keyring for the source it stands for.
   */
  readonly mirrors?: readonly ArchiveMirror[];
}): Promise<AptRepositories> {
  const stats = { bytesDownloaded: 0, indexCacheHits: 0, indexFetches: 0 };
  const now = args.now ?? new Date();
  const byName = new Map<string, PackageCandidate[]>();
  // Credentials stay out of the candidates (they travel into plans and logs).
  const authorizations = new WeakMap<PackageCandidate, string>();

  const loaded = await Promise.all(args.sources.map(async (source) => {
    const keys = await loadKeyring(args.root, source);
    const via = mirroredUri(source.uri, args.mirrors);
    if (via.mirror) args.logger.debug({ source: source.uri, suite: source.suite, mirror: via.uri }, 'apt source fetched through a mirror');
    const fetched: AptSource = { ...source, uri: via.uri };
    const auth = via.authorization ? { authorization: via.authorization } : {};
    const release = await fetchRelease({ source: fetched, keys, dispatcher: args.dispatcher, cacheDir: args.cacheDir, logger: args.logger, now, stats, ...auth });
    const archs = indexArchitectures(source, release, args.architectures);
    const parts = await Promise.all(source.components.flatMap((component) => archs.map(async (architecture) => ({
      records: await loadPackagesIndex({ release, component, architecture, dispatcher: args.dispatcher, cacheDir: args.cacheDir, stats, ...auth, ...(args.wanted ? { wanted: args.wanted } : {}) }),
    }))));
    return { source: fetched, release, authorization: via.authorization, records: parts.flatMap((p) => p.records ?? []) };
  }));

  const archSet = new Set(args.architectures);
  for (const { source, release, authorization, records } of loaded) {
    const releaseInfo = {
      ...(release.origin ? { origin: release.origin } : {}), ...(release.label ? { label: release.label } : {}),
      ...(release.suite ? { suite: release.suite } : {}), ...(release.codename ? { codename: release.codename } : {}),
      notAutomatic: release.notAutomatic, butAutomaticUpgrades: release.butAutomaticUpgrades,
    };
    for (const fields of records) {
      const paragraph: Paragraph = { fields };
      const name = field(paragraph, 'Package');
      const architecture = field(paragraph, 'Architecture') ?? 'all';
      if (!name || !archSet.has(architecture)) continue;
      const version = field(paragraph, 'Version');
      const filename = field(paragraph, 'Filename');
      const sha256 = field(paragraph, 'SHA256');
      if (!version || !filename || !sha256) continue;
      const multiArch = field(paragraph, 'Multi-Arch');
      const candidate: PackageCandidate = {
        name, version, architecture, filename, sha256, paragraph,
        size: Number(field(paragraph, 'Size') ?? '0'),
        url: `${source.uri}/${filename}`,
        release: releaseInfo,
        ...(multiArch ? { multiArch } : {}),
      };
      if (authorization) authorizations.set(candidate, authorization);
      push(byName, name, candidate);
    }
  }
  for (const list of byName.values()) list.sort((a, b) => compareDpkgVersions(b.version, a.version));

  return {
    stats,
    candidates: (name) => byName.get(name) ?? [],
    async openDeb(candidate) {
      const authorization = authorizations.get(candidate);
      const res = await fetchWithRetries(args.dispatcher, candidate.url, authorization ? { authorization } : {});
      if (res.status !== 200) {
        await res.body.dump();
        throw new AptError('FETCH_FAILED', `${candidate.url}: HTTP ${res.status}`);
      }
      const verify = verifyingStream({ digest: `sha256:${candidate.sha256}`, size: candidate.size },
        (_code, message) => new AptError('DEB_HASH_MISMATCH', `${candidate.url} does not match its Packages entry: ${message}`));
      res.body.on('data', (chunk: Buffer) => { stats.bytesDownloaded += chunk.length; });
      return bodyThrough(res, verify);
    },
  };
}

/** binary-<arch> indexes to read: the image's architectures the release carries, plus binary-all when arch:all packages live only there. */
function indexArchitectures(source: AptSource, release: Release, wanted: readonly string[]): string[] {
  const archs = (source.architectures ?? wanted).filter((a) => a !== 'all' && (release.architectures.length === 0 || release.architectures.includes(a)));
  if (!release.allInArchIndexes && release.architectures.includes('all')) archs.push('all');
  return archs;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

import type { Dispatcher } from 'undici';
import type { ImageFilesystem } from '../../../image/filesystem.js';
import type { ImageConfig } from '../../../image/types.js';
import type { Logger } from '../../../lib/log.js';
import type { DpkgDatabase } from '../dpkg-database.js';
import { loadAptRepositories, readAptSources, type AptRepositories, type ArchiveMirror } from './index.js';

const debianArchByOci: Record<string, string> = {
  amd64: 'amd64', arm64: 'arm64', '386': 'i386', ppc64le: 'ppc64el', s390x: 's390x', riscv64: 'riscv64', mips64le: 'mips64el', loong64: 'loong64',
};

/** The image's own apt repositories, indexed for its installed package names; undefined when it has no sources. */
export async function loadImageRepositories(args: {
  fs: ImageFilesystem;
  db: DpkgDatabase;
  config: ImageConfig;
  dispatcher: Dispatcher;
  cacheDir: string;
  logger: Logger;
  now?: Date;
  /** Fetch through these instead of the sources' own URIs; the image's sources files are never changed. */
  mirrors?: readonly ArchiveMirror[];
}): Promise<AptRepositories | undefined> {
  const sources = await readAptSources(args.fs);
  if (sources.length === 0) return undefined;
  const architectures = await debianArchitectures(args.fs, args.config.architecture, args.config.variant);
  const installedNames = new Set(args.db.packages.map((p) => p.name));
  return loadAptRepositories({
    root: args.fs, sources, architectures, dispatcher: args.dispatcher, cacheDir: args.cacheDir, logger: args.logger,
    wanted: (name) => installedNames.has(name), ...(args.now ? { now: args.now } : {}), ...(args.mirrors ? { mirrors: args.mirrors } : {}),
  });
}

/** The dpkg architectures to index: the native one (dpkg's own record first, else from the config) plus foreign ones and 'all'. */
async function debianArchitectures(fs: ImageFilesystem, ociArch: string, variant: string | undefined): Promise<string[]> {
  const recorded = (await fs.readFile('var/lib/dpkg/arch'))?.toString('utf8').split('\n').map((l) => l.trim()).filter(Boolean) ?? [];
  const native = ociArch === 'arm' ? (variant === 'v7' || variant === undefined ? 'armhf' : 'armel') : debianArchByOci[ociArch];
  const archs = new Set([...(native ? [native] : []), ...recorded, 'all']);
  return [...archs];
}

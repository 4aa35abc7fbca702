import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

// Compares two unpacked root filesystems entry by entry: what an image user
// would see. Symlinks are never followed (a root's absolute links point into
// the host otherwise). mtimes are not compared: the oracle and patchd unpack at
// different times; xattrs and hard-link identity are not compared either.

export type TreeDifferenceKind = 'only-in-a' | 'only-in-b' | 'type' | 'content' | 'mode' | 'owner' | 'symlink-target';

export interface TreeDifference {
  /** Relative to the roots, '/'-separated, no leading slash. */
  readonly path: string;
  readonly kind: TreeDifferenceKind;
  readonly a?: string;
  readonly b?: string;
}

export interface CompareOptions {
  /** A path for which this is true is skipped together with everything below it. */
  readonly ignore: (relPath: string) => boolean;
}

interface Entry {
  readonly stats: Stats;
  readonly absPath: string;
}

function typeOf(stats: Stats): string {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isCharacterDevice()) return `char-device ${deviceNumbers(stats)}`;
  if (stats.isBlockDevice()) return `block-device ${deviceNumbers(stats)}`;
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  return 'unknown';
}

function deviceNumbers(stats: Stats): string {
  // Linux dev_t encoding (glibc's gnu_dev_major/minor).
  const rdev = BigInt(stats.rdev);
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major},${minor}`;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}

async function listNames(dir: string): Promise<Set<string>> {
  return new Set(await readdir(dir));
}

const mode = (stats: Stats): string => (stats.mode & 0o7777).toString(8).padStart(4, '0');
const owner = (stats: Stats): string => `${stats.uid}:${stats.gid}`;

/**
 * Every difference between the trees rooted at a and b, sorted by path. A
 * directory that exists on one side only is reported once, not per child.
 */
export async function compareTrees(a: string, b: string, options: CompareOptions): Promise<TreeDifference[]> {
  const differences: TreeDifference[] = [];
  // Content hashing dominates the cost: collect pairs and hash a few at a time.
  const sameSizeFiles: { path: string; a: string; b: string }[] = [];

  async function compareEntry(relPath: string, ea: Entry, eb: Entry): Promise<void> {
    const typeA = typeOf(ea.stats);
    const typeB = typeOf(eb.stats);
    if (typeA !== typeB) {
      differences.push({ path: relPath, kind: 'type', a: typeA, b: typeB });
      return;
    }
    if (!ea.stats.isSymbolicLink() && mode(ea.stats) !== mode(eb.stats)) {
      differences.push({ path: relPath, kind: 'mode', a: mode(ea.stats), b: mode(eb.stats) });
    }
    if (owner(ea.stats) !== owner(eb.stats)) {
      differences.push({ path: relPath, kind: 'owner', a: owner(ea.stats), b: owner(eb.stats) });
    }
    if (ea.stats.isSymbolicLink()) {
      const [targetA, targetB] = await Promise.all([readlink(ea.absPath), readlink(eb.absPath)]);
      if (targetA !== targetB) differences.push({ path: relPath, kind: 'symlink-target', a: targetA, b: targetB });
    } else if (ea.stats.isFile()) {
      if (ea.stats.size !== eb.stats.size) {
        differences.push({ path: relPath, kind: 'content', a: `size ${ea.stats.size}`, b: `size ${eb.stats.size}` });
      } else {
        sameSizeFiles.push({ path: relPath, a: ea.absPath, b: eb.absPath });
      }
    } else if (ea.stats.isDirectory()) {
      await compareDirectory(relPath, ea.absPath, eb.absPath);
    }
  }

  async function compareDirectory(relDir: string, dirA: string, dirB: string): Promise<void> {
    const [namesA, namesB] = await Promise.all([listNames(dirA), listNames(dirB)]);
    const names = [...new Set([...namesA, ...namesB])].sort();
    for (const name of names) {
      const relPath = relDir === '' ? name : `${relDir}/${name}`;
      if (options.ignore(relPath)) continue;
      const absA = join(dirA, name);
      const absB = join(dirB, name);
      if (!namesB.has(name)) {
        differences.push({ path: relPath, kind: 'only-in-a', a: typeOf(await lstat(absA)) });
      } else if (!namesA.has(name)) {
        differences.push({ path: relPath, kind: 'only-in-b', b: typeOf(await lstat(absB)) });
      } else {
        const [statsA, statsB] = await Promise.all([lstat(absA), lstat(absB)]);
        await compareEntry(relPath, { stats: statsA, absPath: absA }, { stats: statsB, absPath: absB });
      }
    }
  }

  const [rootA, rootB] = await Promise.all([lstat(a), lstat(b)]);
  if (!rootA.isDirectory() || !rootB.isDirectory()) throw new Error(`compareTrees: ${a} and ${b} must be directories`);
  await compareEntry('', { stats: rootA, absPath: a }, { stats: rootB, absPath: b });

  let next = 0;
  const hashWorker = async (): Promise<void> => {
    while (next < sameSizeFiles.length) {
      const pair = sameSizeFiles[next++]!;
      const [hashA, hashB] = await Promise.all([sha256File(pair.a), sha256File(pair.b)]);
      if (hashA !== hashB) differences.push({ path: pair.path, kind: 'content', a: hashA, b: hashB });
    }
  };
  await Promise.all(Array.from({ length: 4 }, hashWorker));

  // The root itself is reported as '.', everything else by its relative path.
  return differences
    .map((d) => (d.path === '' ? { ...d, path: '.' } : d))
    .sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : x.kind.localeCompare(y.kind)));
}

/** `prefix` itself or anything below it. */
const under = (prefix: string) => (relPath: string): boolean => relPath === prefix || relPath.startsWith(`${prefix}/`);

/**
 * What may legitimately differ between a root patched by patchd and the same
 * root after a real `apt-get update && apt-get upgrade`: apt's and dpkg's own
 * bookkeeping of the run, not the result of it.
 */
const volatileRules: readonly ((relPath: string) => boolean)[] = [
  // dpkg.log, apt/history.log, term.log, eipp.log.xz: a record of the run itself.
  under('var/log'),
  // apt's downloaded .debs, pkgcache.bin/srcpkgcache.bin, the archives lock and
  // partial/ (chowned to _apt by every run), debconf's *.dat-old backups, and
  // ldconfig's aux-cache (written by the ldconfig trigger, a cache by name).
  under('var/cache'),
  // The downloaded indexes, their lock and partial/: fetched by `apt-get update`.
  under('var/lib/apt/lists'),
  // apt's auto-installed marks: rewritten by every apt run that changes packages.
  under('var/lib/apt/extended_states'),
  // dpkg's backups of its databases before each write (status-old, diversions-old, ...).
  (p) => /^var\/lib\/dpkg\/[^/]+-old$/.test(p),
  // dpkg's lock files: created empty by whoever takes the lock.
  (p) => /^var\/lib\/dpkg\/lock[^/]*$/.test(p),
  // dpkg's trigger bookkeeping (Lock, Unincorp, pending triggers) of the run.
  under('var/lib/dpkg/triggers'),
  // The oracle copies the host's resolver in for apt-get update; an image's is
  // replaced by the container runtime anyway.
  under('etc/resolv.conf'),
  // Device nodes and the proc mount point's contents belong to the runtime, not the image.
  (p) => p.startsWith('dev/'),
  (p) => p.startsWith('proc/'),
];

export const volatilePaths = (relPath: string): boolean => volatileRules.some((rule) => rule(relPath));

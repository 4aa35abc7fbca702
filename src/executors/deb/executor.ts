import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Header as TarHeaders } from 'tar-stream';
import { forEachEntry, type ImageFilesystem } from '../../image/filesystem.js';
import { readAllBytes as collect } from '../../lib/streams.js';
import type { LayerBuilder } from '../../image/layer-builder.js';
import type { Logger } from '../../lib/log.js';
import type { PatchPlan, PlannedPackage } from '../../plan/types.js';
import { parseParagraphs } from '../../distro/deb/control.js';
import { readDebArchive, type DebControlMember } from '../../distro/deb/deb-archive.js';
import {
  dpkgDir, formatStatus, installedStanza, md5Hex, splitLines,
  type Conffile, type DpkgDatabase, type InstalledPackage, type UserDatabase,
} from '../../distro/deb/dpkg-database.js';
import { fetchDeb } from './deb-cache.js';
import { DebError } from '../../distro/deb/errors.js';
import { OverlayView } from './overlay-view.js';
import type { AptRepositories } from '../../distro/deb/repository/index.js';
import { checkLibraryCache } from './scripts/ldconfig.js';
import { checkMaintainerScripts, configurePackage } from './scripts/handlers.js';

export interface DebExecutionResult {
  readonly applied: readonly PlannedPackage[];
  readonly failed: readonly { readonly pkg: PlannedPackage; readonly error: Error }[];
  readonly bytesDownloaded: number;
}

/** Files script handlers read back after unpacking (ca-certificates' bundle is built from them). */
const readBackByHandlers = /^usr\/(local\/)?share\/ca-certificates\//;

const smallFileBytes = 1 << 20;

interface PreparedPackage {
  readonly planned: PlannedPackage;
  readonly installed: InstalledPackage;
  readonly debPath: string;
  readonly control: ReadonlyMap<string, DebControlMember>;
}

/**
 * Installs planned Debian package upgrades into a patch layer without running
 * dpkg: unpack data.tar, write dpkg's database the way dpkg writes it, whiteout
 * what the old version had and the new one lacks, and stand in for the
 * maintainer scripts and triggers we understand. Anything else that would run
 * code fails the package with SCRIPTS_REQUIRED (`ignoreErrors` skips it).
 */
export async function executeDebPlan(args: {
  readonly base: ImageFilesystem;
  readonly db: DpkgDatabase;
  readonly users: UserDatabase;
  readonly plan: PatchPlan;
  readonly repositories: AptRepositories;
  readonly builder: LayerBuilder;
  readonly tmpDir: string;
  readonly ignoreErrors: boolean;
  /** Keep downloaded .debs here across runs (by their SHA256); default: fetch each time. */
  readonly debCacheDir?: string;
  readonly logger: Logger;
  readonly onProgress?: (event: { phase: 'download' | 'unpack' | 'configure'; pkg: string }) => void;
}): Promise<DebExecutionResult> {
  const { base, db, plan, repositories, builder, logger } = args;
  const view = new OverlayView(base, builder);
  const workDir = await mkdtemp(join(args.tmpDir, 'debs-'));
  const failed: { pkg: PlannedPackage; error: Error }[] = [];
  const fail = (pkg: PlannedPackage, error: unknown) => {
    const err = error instanceof Error ? error : new Error(String(error));
    if (!args.ignoreErrors || !(err instanceof DebError && err.code === 'SCRIPTS_REQUIRED')) throw err;
    logger.warn({ pkg: pkg.name, err: err.message }, 'skipping package (ignoreErrors)');
    failed.push({ pkg, error: err });
  };

  try {
    // Phase 1, for all packages at once: download, verify, read control, vet scripts.
    const prepared = await mapLimit(plan.packages, 8, async (planned) => {
      const installed = db.get(planned.name, planned.architecture);
      if (!installed) throw new DebError('DPKG_DATABASE_INVALID', `${planned.name} is not installed`);
      args.onProgress?.({ phase: 'download', pkg: planned.name });
      const debPath = args.debCacheDir
        ? await fetchDeb({ repositories, candidate: planned.candidate, cacheDir: args.debCacheDir })
        : await downloadDeb(repositories, planned, workDir);
      const control = await readDebArchive(createReadStream(debPath));
      try {
        await checkMaintainerScripts({ db, installed, control, newVersion: planned.to, base });
        return { planned, installed, debPath, control };
      } catch (error) {
        fail(planned, error);
        return undefined;
      }
    });

    // Phase 2, in plan order: unpack into the layer and record dpkg's view.
    const stanzas = new Map<InstalledPackage, ReturnType<typeof installedStanza>>();
    const applied: PlannedPackage[] = [];
    for (const item of prepared) {
      if (!item) continue;
      args.onProgress?.({ phase: 'unpack', pkg: item.planned.name });
      stanzas.set(item.installed, await unpackPackage(item, { db, view, builder, users: args.users, base }));
      applied.push(item.planned);
    }

    for (const item of prepared) {
      if (!item) continue;
      args.onProgress?.({ phase: 'configure', pkg: item.planned.name });
      await configurePackage({ pkg: item.installed, newVersion: item.planned.to, control: item.control, base, view, builder });
    }
    if (applied.length > 0) {
      await checkLibraryCache({ base, view, builder });
      await writeStatus(db, stanzas, builder);
    }
    return { applied, failed, bytesDownloaded: repositories.stats.bytesDownloaded };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function unpackPackage(
  item: PreparedPackage,
  ctx: { db: DpkgDatabase; view: OverlayView; builder: LayerBuilder; users: UserDatabase; base: ImageFilesystem },
) {
  const { db, view, builder, users } = ctx;
  const { installed, control } = item;
  const newConffiles = new Set(control.get('conffiles') ? splitLines(control.get('conffiles')!.content).map((l) => l.trim().split(/\s+/).pop()!) : []);
  const oldConffiles = new Map(installed.conffiles.map((c) => [c.path, c] as const));
  const conffileMd5 = new Map<string, string>();
  const list: string[] = [];
  const written = new Set<string>();

  await readDebArchive(createReadStream(item.debPath), (data) => forEachEntry(data, handleEntry));

  async function handleEntry(header: TarHeaders, stream: Readable): Promise<void> {
    const archivePath = normaliseArchivePath(header.name, installed.name);
    list.push(archivePath === '' ? '/.' : `/${archivePath}`);
    if (archivePath === '') { stream.resume(); await finished(stream); return; }
    const listPath = `/${archivePath}`;
    const diverted = db.diversions.get(listPath);
    const destination = view.resolveParent(
      diverted && diverted.by !== installed.name ? diverted.divertTo.replace(/^\//, '') : archivePath);
    const override = db.statOverrides.get(listPath);
    const meta = {
      mode: override?.mode ?? (header.mode ?? 0o644) & 0o7777,
      uid: override?.uid ?? ownerId(header.uname, header.uid, (n) => users.uid(n)),
      gid: override?.gid ?? ownerId(header.gname, header.gid, (n) => users.gid(n)),
    };

    switch (header.type) {
      case 'directory': {
        stream.resume(); await finished(stream);
        // dpkg leaves existing directories (and symlinks to directories) alone.
        if (!view.isDirectory(destination)) builder.addDirectory(destination, meta);
        return;
      }
      case 'file':
      case 'contiguous-file': {
        written.add(destination);
        if (newConffiles.has(listPath)) {
          const content = await collect(stream);
          conffileMd5.set(listPath, md5Hex(content));
          await installConffile(listPath, destination, content, meta);
          return;
        }
        if (readBackByHandlers.test(destination)) await view.addFile(destination, meta, await collect(stream));
        // Small files are handed over as bytes (the builder keeps them in memory within its budget); big ones stream to a spool file.
        else await builder.addFile(destination, meta, (header.size ?? 0) <= smallFileBytes ? await collect(stream) : stream);
        return;
      }
      case 'symlink':
        stream.resume(); await finished(stream);
        written.add(destination);
        builder.addSymlink(destination, header.linkname ?? '', meta);
        return;
      case 'link': {
        stream.resume(); await finished(stream);
        const target = view.resolveParent(normaliseArchivePath(header.linkname ?? '', installed.name));
        if (!written.has(target)) {
          throw new DebError('DEB_PATH_TRAVERSAL', `${installed.name}: hard link ${archivePath} points outside the package (${header.linkname})`);
        }
        written.add(destination);
        builder.addHardlink(destination, target, meta);
        return;
      }
      default:
        throw new DebError('DEB_UNSUPPORTED', `${installed.name}: unsupported entry type ${header.type} for ${archivePath}`);
    }
  }

  /** dpkg --force-confold: replace an unmodified conffile, keep a modified one and ship ours as .dpkg-dist. */
  async function installConffile(listPath: string, destination: string, content: Buffer, meta: { mode: number; uid: number; gid: number }) {
    const old = oldConffiles.get(listPath);
    const current = view.lstat(destination) ? await ctx.base.readFile(destination) : undefined;
    if (old && current && md5Hex(current) !== old.md5) {
      await builder.addFile(`${destination}.dpkg-dist`, meta, content);
      return;
    }
    if (old && !current) return; // the admin deleted it: dpkg keeps it deleted
    await builder.addFile(destination, meta, content);
  }

  // Files the old version shipped and the new one does not: whiteout, unless shared or a conffile.
  const newList = new Set(list);
  const removed = (await db.fileList(installed)).filter((p) => p !== '/.' && !newList.has(p)).sort().reverse();
  for (const listPath of removed) {
    if (oldConffiles.has(listPath)) continue;
    const owners = await db.owners(listPath);
    if ([...owners].some((o) => o !== installed.infoKey)) continue;
    const diverted = db.diversions.get(listPath);
    const path = view.resolveParent((diverted && diverted.by !== installed.name ? diverted.divertTo : listPath).replace(/^\//, ''));
    if (written.has(path)) continue; // the same file under an aliased directory (merged /usr)
    const entry = view.lstat(path);
    if (!entry) continue;
    if (entry.type === 'directory' && view.children(path).length > 0) continue;
    builder.addWhiteout(path);
  }

  await writeInfoFiles(db, installed, control, list, builder);

  const conffiles: Conffile[] = [...newConffiles].map((path) => ({ path, md5: conffileMd5.get(path) ?? '', obsolete: false }));
  for (const old of installed.conffiles) {
    if (!newConffiles.has(old.path)) conffiles.push({ path: old.path, md5: old.md5, obsolete: true });
  }
  const paragraph = parseParagraphs(control.get('control')!.content.toString('utf8'))[0];
  if (!paragraph) throw new DebError('DEB_INVALID', `${installed.name}: empty control file`);
  return installedStanza(paragraph, conffiles, installed.status);
}

/** dpkg keeps every control member but `control` itself in var/lib/dpkg/info, plus the file list. */
async function writeInfoFiles(db: DpkgDatabase, pkg: InstalledPackage, control: ReadonlyMap<string, DebControlMember>, list: readonly string[], builder: LayerBuilder) {
  const info = `${dpkgDir}/info/${pkg.infoKey}`;
  if (db.layout === 'status.d') {
    const md5sums = control.get('md5sums');
    if (md5sums) await builder.addFile(`${dpkgDir}/status.d/${pkg.name}.md5sums`, { mode: 0o644 }, md5sums.content);
    return;
  }
  const keep = new Set<string>(['list']);
  for (const member of control.values()) {
    if (member.name === 'control') continue;
    keep.add(member.name);
    await builder.addFile(`${info}.${member.name}`, { mode: member.mode }, member.content);
  }
  await builder.addFile(`${info}.list`, { mode: 0o644 }, Buffer.from(list.map((p) => `${p}\n`).join('')));
  for (const suffix of db.infoSuffixes(pkg)) {
    if (!keep.has(suffix)) builder.addWhiteout(`${info}.${suffix}`);
  }
}

async function writeStatus(db: DpkgDatabase, stanzas: ReadonlyMap<InstalledPackage, ReturnType<typeof installedStanza>>, builder: LayerBuilder) {
  if (db.layout === 'status.d') {
    for (const [pkg, stanza] of stanzas) {
      await builder.addFile(`${dpkgDir}/status.d/${pkg.name}`, { mode: 0o644 }, Buffer.from(formatStatus([stanza])));
    }
    return;
  }
  const byParagraph = new Map([...stanzas].map(([pkg, stanza]) => [pkg.paragraph, stanza] as const));
  const paragraphs = db.statusParagraphs.map((p) => byParagraph.get(p) ?? p);
  await builder.addFile(`${dpkgDir}/status`, { mode: 0o644 }, Buffer.from(formatStatus(paragraphs)));
}

function normaliseArchivePath(name: string, pkg: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' || part.includes('\0')) throw new DebError('DEB_PATH_TRAVERSAL', `${pkg}: archive path escapes the root: ${JSON.stringify(name)}`);
    parts.push(part);
  }
  return parts.join('/');
}

function ownerId(name: string | undefined, id: number | undefined, lookup: (name: string) => number | undefined): number {
  // dpkg prefers the name (resolved in the target's own passwd/group), then the number.
  return (name ? lookup(name) : undefined) ?? id ?? 0;
}

function finished(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.readableEnded) { resolve(); return; }
    stream.once('end', resolve);
    stream.once('error', reject);
  });
}

async function downloadDeb(repositories: AptRepositories, planned: PlannedPackage, dir: string): Promise<string> {
  const path = join(dir, `${planned.name}_${planned.architecture}.deb`);
  await pipeline(await repositories.openDeb(planned.candidate), createWriteStream(path));
  return path;
}

/** Runs fn over items, `limit` at a time; on failure starts nothing new and lets running calls settle before rethrowing. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.error;
  return out;
}

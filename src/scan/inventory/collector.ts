import { createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DatabaseSync } from 'node:sqlite';
import type { FileInspector, FsEntry, ImageFilesystem } from '../../image/filesystem.js';
import { readAllBytes } from '../../lib/streams.js';
import { readApkInstalled } from './readers/apk.js';
import { readDotnetDeps, isDotnetAppDeps } from './readers/dotnet.js';
import { readDpkgStatus } from './readers/dpkg.js';
import { goPackages, readGoBuildInfo } from './readers/go-buildinfo.js';
import { isGoModPath, readGoMod } from './readers/go-mod.js';
import { nodeManifestPath, nodePackagePath, readNodeManifest, readNodePackage, type NodeAppManifest } from './readers/node.js';
import { parseOsRelease } from './readers/os-release.js';
import { pythonMetadataPath, readPythonMetadata } from './readers/python.js';
import { bdbHashValues } from '../../distro/rpm/bdb.js';
import { evrOf, parseRpmHeader, sourcePackageOf } from '../../distro/rpm/header.js';
import { purlFor } from './purl.js';
import type { InstalledPackage, Inventory, OsInfo, PackageRecord } from './types.js';

type Kind = 'os-release' | 'dpkg' | 'apk' | 'rpm-sqlite' | 'rpm-sqlite-wal' | 'rpm-bdb' | 'rpm-ndb' | 'python' | 'node-package' | 'node-manifest' | 'dotnet' | 'go-mod' | 'binary';

const mib = 2 ** 20;
/** Largest file of each kind read; anything bigger is reported, not read. */
const maxBytes: Record<Kind, number> = {
  'os-release': 64 * 1024, dpkg: 64 * mib, apk: 64 * mib, 'rpm-sqlite': 1024 * mib, 'rpm-sqlite-wal': 1024 * mib, 'rpm-bdb': 1024 * mib, 'rpm-ndb': 0,
  python: 4 * mib, 'node-package': mib, 'node-manifest': mib, dotnet: 16 * mib, 'go-mod': 4 * mib, binary: Number.MAX_SAFE_INTEGER,
};

function kindOf(entry: FsEntry): Kind | undefined {
  const p = entry.path;
  if (p === 'etc/os-release' || p === 'usr/lib/os-release') return 'os-release';
  if (p === 'var/lib/dpkg/status' || (p.startsWith('var/lib/dpkg/status.d/') && !p.endsWith('.md5sums') && p.split('/').length === 5)) return 'dpkg';
  if (p === 'lib/apk/db/installed' || p === 'usr/lib/apk/db/installed') return 'apk';
  if (/^(var\/lib\/rpm|usr\/lib\/sysimage\/rpm)\//.test(p)) {
    if (p.endsWith('/rpmdb.sqlite')) return 'rpm-sqlite';
    if (p.endsWith('/rpmdb.sqlite-wal')) return 'rpm-sqlite-wal';
    if (p.endsWith('/Packages')) return 'rpm-bdb';
    if (p.endsWith('/Packages.db')) return 'rpm-ndb';
  }
  if (pythonMetadataPath.test(p)) return 'python';
  if (nodePackagePath.test(p)) return 'node-package';
  if (nodeManifestPath.test(p) && !p.includes('node_modules/')) return 'node-manifest';
  if (isDotnetAppDeps(p)) return 'dotnet';
  if (isGoModPath(p)) return 'go-mod';
  if ((entry.mode & 0o111) !== 0 && entry.size >= 4096) return 'binary';
  return undefined;
}

interface Found<T> { readonly layerIndex: number; readonly value: T }

/** What an InventoryCollector read from an image's first layers (see snapshot). */
export interface CollectorSnapshot {
  readonly records: ReadonlyMap<string, Found<PackageRecord[]>>;
  readonly osRelease: ReadonlyMap<string, Found<OsInfo>>;
  readonly manifests: ReadonlyMap<string, Found<NodeAppManifest>>;
  readonly warnings: readonly string[];
}

/**
 * Reads package records while the image's layers stream past (an
 * ImageFilesystem inspector), then keeps only the records whose file is
 * still there in the merged view: later layers, whiteouts and opaque
 * directories are resolved without a second pass.
 */
export class InventoryCollector implements FileInspector {
  private readonly records = new Map<string, Found<PackageRecord[]>>();
  private readonly osRelease = new Map<string, Found<OsInfo>>();
  private readonly manifests = new Map<string, Found<NodeAppManifest>>();
  private readonly warnings: string[] = [];

  constructor(private readonly options: { tmpDir?: string } = {}, from?: CollectorSnapshot) {
    if (!from) return;
    for (const [path, found] of from.records) this.records.set(path, found);
    for (const [path, found] of from.osRelease) this.osRelease.set(path, found);
    for (const [path, found] of from.manifests) this.manifests.set(path, found);
    this.warnings.push(...from.warnings);
  }

  /**
   * What the layers so far contributed, to start another collector from; not
   * a copy (serialize it before reading on). None while an rpm database
   * waits in a spool file of this collector's own.
   */
  state(): CollectorSnapshot | undefined {
    if (this.spooled.size > 0) return undefined;
    return { records: this.records, osRelease: this.osRelease, manifests: this.manifests, warnings: this.warnings };
  }

  wants(entry: FsEntry): boolean {
    const kind = kindOf(entry);
    if (!kind) return false;
    if (entry.size > maxBytes[kind]) {
      if (kind !== 'binary') this.warnings.push(`${entry.path}: ${kind} record of ${entry.size} bytes is larger than the ${maxBytes[kind]}-byte limit; not read`);
      return false;
    }
    return true;
  }

  async inspect(entry: FsEntry, body: Readable): Promise<void> {
    const kind = kindOf(entry)!;
    const path = entry.path;
    try {
      switch (kind) {
        case 'binary': {
          const result = await readGoBuildInfo(body);
          if (result.kind === 'go') this.put(path, entry.layerIndex, goPackages(result.info, path));
          else if (result.kind === 'old-go') this.warnings.push(`${path}: Go binary ${result.reason}`);
          return;
        }
        case 'rpm-sqlite':
        case 'rpm-sqlite-wal':
          // A database in WAL mode may keep committed rows in its -wal file: both are read together in finish().
          await this.spool(path, entry.layerIndex, body);
          return;
        case 'rpm-bdb':
          this.put(path, entry.layerIndex, await this.readRpmDatabase(body, path));
          return;
        case 'rpm-ndb':
          this.warnings.push(`${path}: rpm NDB databases are not read yet; packages in it are not scanned`);
          return;
        default:
          break;
      }
      const text = (await readAllBytes(body)).toString('utf8');
      switch (kind) {
        case 'os-release': {
          const os = parseOsRelease(text);
          if (os) this.osRelease.set(path, { layerIndex: entry.layerIndex, value: os });
          return;
        }
        case 'dpkg': return this.put(path, entry.layerIndex, readDpkgStatus(text, path));
        case 'apk': return this.put(path, entry.layerIndex, readApkInstalled(text, path));
        case 'python': return this.put(path, entry.layerIndex, optional(readPythonMetadata(text, path)));
        case 'node-package': return this.put(path, entry.layerIndex, optional(readNodePackage(text, path)));
        case 'node-manifest': {
          const manifest = readNodeManifest(text, path);
          if (manifest) this.manifests.set(path, { layerIndex: entry.layerIndex, value: manifest });
          return;
        }
        case 'dotnet': return this.put(path, entry.layerIndex, readDotnetDeps(text, path));
        case 'go-mod': return this.put(path, entry.layerIndex, readGoMod(text, path));
      }
    } catch (error) {
      this.warnings.push(`${path}: ${(error as Error).message}`);
    }
  }

  link(entry: FsEntry, target: string): void {
    const found = this.records.get(target);
    if (found?.layerIndex === entry.layerIndex) {
      this.records.set(entry.path, { layerIndex: entry.layerIndex, value: found.value.map((r) => ({ ...r, path: entry.path, ...(r.location === target ? { location: entry.path } : {}) })) });
    }
  }

  private put(path: string, layerIndex: number, records: PackageRecord[]): void {
    this.records.set(path, { layerIndex, value: records });
  }

  private readonly spooled = new Map<string, Found<string>>();
  private spoolDir?: Promise<string>;

  private async spool(path: string, layerIndex: number, body: Readable): Promise<void> {
    this.spoolDir ??= mkdtemp(join(this.options.tmpDir ?? tmpdir(), 'patchd-rpmdb-'));
    const file = join(await this.spoolDir, `${this.spooled.size}-${path.split('/').pop()}`);
    await pipeline(body, createWriteStream(file, { mode: 0o600 }));
    this.spooled.set(path, { layerIndex, value: file });
  }

  private async readRpmDatabase(body: Readable, path: string): Promise<PackageRecord[]> {
    // Berkeley DB needs random access: spool to a private temp file.
    const dir = await mkdtemp(join(this.options.tmpDir ?? tmpdir(), 'patchd-rpmdb-'));
    const file = join(dir, 'db');
    try {
      await pipeline(body, createWriteStream(file, { mode: 0o600 }));
      const blobs: Buffer[] = [];
      const handle = await open(file, 'r');
      try {
        for await (const blob of bdbHashValues(handle)) blobs.push(blob);
      } finally {
        await handle.close();
      }
      return rpmRecords(blobs, path, this.warnings);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Removes spooled databases (finish() does too); for a scan that failed half way. */
  async dispose(): Promise<void> {
    if (this.spoolDir) await rm(await this.spoolDir, { recursive: true, force: true });
  }

  /** The spooled sqlite databases still present in the merged view, each with its -wal file when that is current too. */
  private async readSpooledSqlite(present: (path: string, found: Found<unknown>) => boolean): Promise<void> {
    try {
      for (const [path, found] of this.spooled) {
        if (!path.endsWith('/rpmdb.sqlite') || !present(path, found)) continue;
        const dir = await mkdtemp(join(this.options.tmpDir ?? tmpdir(), 'patchd-rpmdb-open-'));
        try {
          await copyFile(found.value, join(dir, 'rpmdb.sqlite'));
          const wal = this.spooled.get(`${path}-wal`);
          if (wal && present(`${path}-wal`, wal)) await copyFile(wal.value, join(dir, 'rpmdb.sqlite-wal'));
          // Not readonly: sqlite replays the WAL into the copy, which is ours to change.
          const db = new DatabaseSync(join(dir, 'rpmdb.sqlite'));
          const blobs: Buffer[] = [];
          try {
            for (const row of db.prepare('SELECT blob FROM Packages').iterate() as Iterable<{ blob: Uint8Array }>) {
              blobs.push(Buffer.from(row.blob.buffer, row.blob.byteOffset, row.blob.byteLength));
            }
          } finally {
            db.close();
          }
          this.put(path, found.layerIndex, rpmRecords(blobs, path, this.warnings));
        } catch (error) {
          this.warnings.push(`${path}: ${(error as Error).message}`);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
    } finally {
      if (this.spoolDir) await rm(await this.spoolDir, { recursive: true, force: true });
    }
  }

  /** The inventory of the merged image. */
  async finish(fs: Pick<ImageFilesystem, 'entryAt' | 'stat'>): Promise<Inventory> {
    const present = <T>(path: string, found: Found<T>) => fs.entryAt(path)?.layerIndex === found.layerIndex;
    await this.readSpooledSqlite(present);
    let os: OsInfo | undefined;
    for (const path of ['etc/os-release', 'usr/lib/os-release']) {
      const found = this.osRelease.get(path);
      if (found && present(path, found) && !os) os = found.value;
    }
    const apps = new Map<string, ReadonlySet<string>>();
    for (const [path, found] of this.manifests) if (present(path, found)) apps.set(found.value.dir, found.value.dependencies);
    const packages: InstalledPackage[] = [];
    for (const [path, found] of [...this.records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!present(path, found)) continue;
      for (const record of found.value) {
        const withDirect = record.ecosystem === 'npm' && !record.global ? { ...record, direct: isTopLevel(record) && (apps.get(record.location ?? '')?.has(record.name) ?? false) } : record;
        packages.push({ ...withDirect, purl: purlFor(withDirect, os) });
      }
    }
    return { ...(os ? { os } : {}), packages, warnings: [...this.warnings] };
  }
}

/** One record per header; a damaged header costs only itself (and a warning), not the whole database. */
function rpmRecords(blobs: readonly Buffer[], path: string, warnings: string[]): PackageRecord[] {
  const out: PackageRecord[] = [];
  let damaged = 0;
  for (const blob of blobs) {
    let h;
    try { h = parseRpmHeader(blob); } catch { damaged++; continue; }
    if (h.name === 'gpg-pubkey') continue; // imported signing keys, not software
    const version = evrOf(h);
    const source = sourcePackageOf(h);
    out.push({
      ecosystem: 'rpm', class: 'os', name: h.name, version, path, architecture: h.arch ?? '',
      sourceName: source?.name ?? h.name, sourceVersion: source?.version ?? version,
    });
  }
  if (damaged > 0) warnings.push(`${path}: ${damaged} of ${blobs.length} package headers are damaged and were skipped`);
  return out;
}

/** `app/node_modules/x/package.json`, not `app/node_modules/a/node_modules/x/package.json`. */
function isTopLevel(record: PackageRecord): boolean {
  const rest = record.path.slice((record.location === '.' ? '' : `${record.location}/`).length);
  return rest.split('node_modules/').length === 2;
}

function optional<T>(value: T | undefined): T[] {
  return value === undefined ? [] : [value];
}

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { Logger } from '../lib/log.js';
import { readAllBytes as collect } from '../lib/streams.js';
import { ImageError } from './errors.js';
import { defaultDecompressLimits, openLayerTar, type DecompressLimits, type Layer } from './layer.js';
import { baseName, normaliseEntryPath, parentOf } from './tar-path.js';

export type FsEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface FsEntry {
  /** Root-relative, no leading '/': 'etc/os-release'; the root itself is ''. */
  readonly path: string;
  readonly type: FsEntryType;
  /** Permission bits (incl. setuid/setgid/sticky), no file-type bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly linkname?: string;
  readonly mtime?: Date;
  readonly layerIndex: number;
}

export interface LoadOptions {
  /** Regular files whose content is kept in memory on the first pass. */
  readonly capture?: (path: string) => boolean;
  /** Per captured file; larger ones are read again from their layer when asked for. */
  readonly maxCaptureBytes?: number;
  readonly limits?: DecompressLimits;
  readonly logger?: Logger;
  /** Sees file contents as they stream past on the first pass (the scanner's inventory). */
  readonly inspector?: FileInspector;
}

/**
 * A reader of file contents during the single pass over the layers. It sees
 * every version of a path in layer order; whiteouts and overwrites are
 * resolved afterwards against the merged view (`entryAt`).
 */
export interface FileInspector {
  wants(entry: FsEntry): boolean;
  /** Must consume `body`; throwing fails the load. */
  inspect(entry: FsEntry, body: Readable): Promise<void>;
  /** A hard link to a file of the same layer that was inspected. */
  link?(entry: FsEntry, target: string): void;
}

const maxSymlinkHops = 40;
const typeOf: Record<string, FsEntryType | undefined> = {
  file: 'file', 'contiguous-file': 'file', directory: 'directory', symlink: 'symlink', link: 'hardlink',
  'character-device': 'char', 'block-device': 'block', fifo: 'fifo',
};

/**
 * The merged, read-only view of an image's layers, whiteouts applied
 * (`.wh.<name>` deletes, `.wh..wh..opq` hides everything below from lower
 * layers). One streaming pass per layer; memory holds the entry index and the
 * captured files only. Symlinks resolve chroot-style: nothing outside the
 * image is ever read.
 */
export class ImageFilesystem {
  private nodes = new Map<string, FsEntry>();
  private children = new Map<string, Set<string>>();
  private captured = new Map<string, Buffer>();

  private constructor(private readonly layers: readonly Layer[], private readonly options: LoadOptions) {
    this.nodes.set('', { path: '', type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, layerIndex: -1 });
  }

  static async load(layers: readonly Layer[], options: LoadOptions = {}): Promise<ImageFilesystem> {
    const fs = ImageFilesystem.resume(layers, options);
    while (fs.applied < layers.length) await fs.applyNext();
    return fs;
  }

  /**
   * A view of `layers` not yet read (`applyNext` reads them in order), or
   * one that starts from the state the same first layers left (`state`),
   * read with the same options. It takes `from` over: give it a copy (a
   * deserialized one) that nothing else uses.
   */
  static resume(layers: readonly Layer[], options: LoadOptions = {}, from?: FsSnapshot): ImageFilesystem {
    const fs = new ImageFilesystem(layers, options);
    if (from) {
      if (from.layers > layers.length) throw new ImageError('LAYER_INVALID', `a snapshot of ${from.layers} layers cannot start a view of ${layers.length}`);
      fs.restore(from);
    }
    return fs;
  }

  /** Layers read so far. */
  get applied(): number {
    return this.appliedLayers;
  }

  private appliedLayers = 0;

  async applyNext(): Promise<void> {
    const index = this.appliedLayers;
    const layer = this.layers[index];
    if (!layer) throw new ImageError('LAYER_INVALID', `no layer ${index} to read`);
    await this.applyLayer(index, layer);
    this.appliedLayers++;
  }

  /**
   * The state after the layers read so far, not a copy: serialize it before
   * reading on (later layers change it), as the scan cache does.
   */
  state(): FsSnapshot {
    return { layers: this.appliedLayers, nodes: this.nodes, children: this.children, captured: this.captured };
  }

  private restore(from: FsSnapshot): void {
    this.appliedLayers = from.layers;
    this.nodes = from.nodes as Map<string, FsEntry>;
    this.children = from.children as Map<string, Set<string>>;
    this.captured = from.captured as Map<string, Buffer>;
  }

  private async applyLayer(index: number, layer: Layer): Promise<void> {
    const stream = await openLayerTar(layer, this.options.limits ?? defaultDecompressLimits);
    const seenInLayer = new Set<string>();
    const capture = this.options.capture;
    const maxCapture = this.options.maxCaptureBytes ?? 64 * 2 ** 20;
    await forEachEntry(stream, async (header, body) => {
      const path = normaliseEntryPath(header.name);
      const name = baseName(path);
      if (name === '.wh..wh..opq') {
        for (const child of [...(this.children.get(parentOf(path)) ?? [])]) {
          const childPath = join(parentOf(path), child);
          if ((this.nodes.get(childPath)?.layerIndex ?? index) < index) this.remove(childPath);
        }
        return drain(body);
      }
      if (name.startsWith('.wh.')) {
        this.remove(join(parentOf(path), name.slice(4)));
        return drain(body);
      }
      const type = typeOf[header.type ?? 'file'];
      if (!type) return drain(body);
      let linkname: string | undefined;
      if (type === 'hardlink') {
        linkname = normaliseHardlinkTarget(header.linkname ?? '', path);
        if (!seenInLayer.has(linkname)) {
          throw new ImageError('HARDLINK_ESCAPE', `hard link ${path} -> ${header.linkname} points outside its layer (${layer.digest})`);
        }
      } else if (type === 'symlink') {
        linkname = header.linkname ?? '';
      }
      const entry: FsEntry = {
        path, type, mode: (header.mode ?? 0o644) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0,
        size: header.size ?? 0, layerIndex: index,
        ...(linkname !== undefined ? { linkname } : {}), ...(header.mtime ? { mtime: header.mtime } : {}),
      };
      this.put(entry);
      seenInLayer.add(path);
      const inspector = type === 'file' && this.options.inspector?.wants(entry) ? this.options.inspector : undefined;
      if (type === 'file' && capture?.(path) && entry.size <= maxCapture) {
        const bytes = await collect(body);
        this.captured.set(path, bytes);
        if (inspector) await inspector.inspect(entry, Readable.from([bytes]));
        return;
      }
      if (inspector) {
        await inspector.inspect(entry, body);
        return drain(body);
      }
      if (type === 'hardlink' && linkname !== undefined) this.options.inspector?.link?.(entry, linkname);
      if (type === 'hardlink' && linkname !== undefined && this.captured.has(linkname) && capture?.(path)) {
        this.captured.set(path, this.captured.get(linkname)!);
      } else {
        this.captured.delete(path);
      }
      return drain(body);
    });
  }

  private put(entry: FsEntry): void {
    const existing = this.nodes.get(entry.path);
    // A non-directory replaces a directory and everything under it.
    if (existing?.type === 'directory' && entry.type !== 'directory') this.remove(entry.path);
    if (entry.path === '') { this.nodes.set('', { ...entry, path: '' }); return; }
    this.ensureParents(entry.path, entry.layerIndex);
    this.nodes.set(entry.path, entry);
    this.captured.delete(entry.path);
    let siblings = this.children.get(parentOf(entry.path));
    if (!siblings) this.children.set(parentOf(entry.path), (siblings = new Set()));
    siblings.add(baseName(entry.path));
  }

  private ensureParents(path: string, layerIndex: number): void {
    const parent = parentOf(path);
    if (parent === '' || this.nodes.get(parent)?.type === 'directory') return;
    // A layer may name a file before (or without) its directory.
    this.put({ path: parent, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, layerIndex });
  }

  private remove(path: string): void {
    const node = this.nodes.get(path);
    if (!node) return;
    for (const child of this.children.get(path) ?? []) this.remove(join(path, child));
    this.children.delete(path);
    this.nodes.delete(path);
    this.captured.delete(path);
    this.children.get(parentOf(path))?.delete(baseName(path));
  }

  /** The entry at `path` without following a final symlink (parents are resolved). */
  lstat(path: string): FsEntry | undefined {
    const normal = normaliseQuery(path);
    if (normal === '') return this.nodes.get('');
    const parent = this.realpath(parentOf(normal));
    if (parent === undefined) return undefined;
    return this.nodes.get(join(parent, baseName(normal)));
  }

  stat(path: string): FsEntry | undefined {
    const real = this.realpath(path);
    return real === undefined ? undefined : this.nodes.get(real);
  }

  /** Resolves every symlink on the way, chroot-style; undefined if a component is missing. */
  realpath(path: string): string | undefined {
    const pending = normaliseQuery(path).split('/').filter(Boolean);
    const resolved: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '.') continue;
      if (part === '..') { resolved.pop(); continue; }
      const candidate = [...resolved, part].join('/');
      const node = this.nodes.get(candidate);
      if (!node) return undefined;
      if (node.type === 'symlink') {
        if (++hops > maxSymlinkHops) throw new ImageError('SYMLINK_LOOP', `too many levels of symbolic links resolving /${path}`);
        if ((node.linkname ?? '').startsWith('/')) resolved.length = 0;
        pending.unshift(...(node.linkname ?? '').split('/').filter(Boolean));
        continue;
      }
      resolved.push(part);
    }
    return resolved.join('/');
  }

  readdir(path: string): string[] {
    const real = this.realpath(path);
    if (real === undefined || this.nodes.get(real)?.type !== 'directory') return [];
    return [...(this.children.get(real) ?? [])].sort();
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    const real = this.realpath(path);
    if (real === undefined) return undefined;
    const node = this.nodes.get(real);
    if (!node || (node.type !== 'file' && node.type !== 'hardlink')) return undefined;
    const captured = this.captured.get(real);
    if (captured) return captured;
    // A hard link's bytes are its target's, as written in the same layer.
    return this.readFromLayer(node.layerIndex, node.type === 'hardlink' && node.linkname !== undefined ? node.linkname : real);
  }

  /** Re-streams one layer to fetch a file that was not captured. */
  private async readFromLayer(layerIndex: number, path: string): Promise<Buffer | undefined> {
    const layer = this.layers[layerIndex];
    if (!layer) return undefined;
    const stream = await openLayerTar(layer, this.options.limits ?? defaultDecompressLimits);
    let found: Buffer | undefined;
    await forEachEntry(stream, async (header, body) => {
      if (found === undefined && normaliseEntryPath(header.name) === path && (header.type === 'file' || header.type === 'contiguous-file')) {
        found = await collect(body);
      } else {
        await drain(body);
      }
    });
    return found;
  }

  /** The entry now at exactly `path` (no symlinks followed), as the merged view has it. */
  entryAt(path: string): FsEntry | undefined {
    return this.nodes.get(path);
  }

  /**
   * What `query` answers on this view, as a short string: equal strings mean
   * equal answers, so a result computed from a set of queries can be reused
   * for another image that answers them all the same (see recordReads). File
   * content stands as its hash when captured, else as the layer digest and
   * path it is read from; mtimes are left out (no reader of this view uses them).
   */
  fingerprint(query: FsQuery): string {
    try {
      switch (query.op) {
        case 'lstat': return metaOf(this.lstat(query.path));
        case 'stat': return `${this.realpath(query.path) ?? '-'}|${metaOf(this.stat(query.path))}`;
        case 'entryAt': return metaOf(this.entryAt(query.path));
        case 'realpath': return this.realpath(query.path) ?? '-';
        case 'readdir': return this.readdir(query.path).join('/');
        case 'readFile': return this.contentIdentity(this.realpath(query.path));
        case 'entries': return createHash('sha256').update(this.entries().map((e) => `${e.path}\0${metaOf(e)}\0${this.contentIdentity(e.path)}`).join('\n')).digest('hex');
      }
    } catch (error) {
      return `error:${(error as { code?: string }).code ?? (error as Error).message}`;
    }
  }

  private contentIdentity(real: string | undefined): string {
    const node = real === undefined ? undefined : this.nodes.get(real);
    if (!node || (node.type !== 'file' && node.type !== 'hardlink')) return '-';
    const captured = this.captured.get(real!);
    if (captured) return `${metaOf(node)}|sha256:${createHash('sha256').update(captured).digest('hex')}`;
    const source = node.type === 'hardlink' && node.linkname !== undefined ? node.linkname : real!;
    return `${metaOf(node)}|${this.layers[node.layerIndex]?.digest ?? '?'}:${source}`;
  }

  entries(): FsEntry[] {
    return [...this.nodes.values()].filter((e) => e.path !== '').sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}

/** The merged view after an image's first `layers` layers (entries, directory listings, captured files). */
export interface FsSnapshot {
  readonly layers: number;
  readonly nodes: ReadonlyMap<string, FsEntry>;
  readonly children: ReadonlyMap<string, ReadonlySet<string>>;
  readonly captured: ReadonlyMap<string, Buffer>;
}

/** A read of the merged view, as recordReads keeps it. */
export interface FsQuery {
  readonly op: 'lstat' | 'stat' | 'entryAt' | 'realpath' | 'readdir' | 'readFile' | 'entries';
  readonly path: string;
}

function metaOf(entry: FsEntry | undefined): string {
  return entry ? `${entry.path} ${entry.type} ${entry.mode.toString(8)} ${entry.uid}:${entry.gid} ${entry.size}${entry.linkname !== undefined ? ` -> ${entry.linkname}` : ''}` : '-';
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function normaliseQuery(path: string): string {
  return path.split('/').filter((p) => p !== '' && p !== '.').join('/');
}

/** Tar hard link targets name an archive path (relative to the root, never to the link). */
function normaliseHardlinkTarget(target: string, path: string): string {
  try {
    return normaliseEntryPath(target);
  } catch {
    throw new ImageError('HARDLINK_ESCAPE', `hard link ${path} -> ${target} escapes the root`);
  }
}

type EntryHandler = (header: tar.Header, body: Readable) => Promise<void>;

/**
 * Feeds each tar entry to `handler` in order; rejects on the first error of
 * the stream, the parser or the handler. A failure destroys the stream (and
 * with it whatever feeds it) and waits for it to close: the error it reports
 * then wins, so a layer's tar stream can name the root cause (see openLayerTar).
 */
export async function forEachEntry(stream: Readable, handler: EntryHandler): Promise<void> {
  const extract = tar.extract();
  try {
    await new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, body, next) => {
        handler(header, body as unknown as Readable).then(() => next(), reject);
      });
      extract.on('finish', resolve);
      extract.on('error', (error: Error) => reject(new ImageError('LAYER_INVALID', `malformed layer tar: ${error.message}`, { cause: error })));
      stream.on('error', reject);
      stream.pipe(extract);
    });
  } catch (error) {
    extract.destroy();
    throw await destroyWith(stream, error);
  }
}

/** Destroys `stream` with `error` (unless it already is) and resolves, once it has closed, with the error it reports. */
function destroyWith(stream: Readable, error: unknown): Promise<unknown> {
  if (stream.closed) return Promise.resolve(error);
  return new Promise((resolve) => {
    let reported: unknown;
    stream.on('error', (e) => { reported ??= e; });
    stream.once('close', () => resolve(reported ?? error));
    stream.destroy(error as Error);
  });
}

function drain(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.resume();
  });
}

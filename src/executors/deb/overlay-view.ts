import { DebError } from '../../distro/deb/errors.js';
import { ImageError } from '../../image/errors.js';
import type { FsEntry, ImageFilesystem } from '../../image/filesystem.js';
import type { LayerBuilder } from '../../image/layer-builder.js';

export interface OverlayEntry {
  readonly type: string; // 'file' | 'directory' | 'symlink' | 'hardlink' | ...
  readonly linkname?: string;
  readonly staged: boolean;
}

const maxHops = 40;

/**
 * The image as it will look with the staged patch layer on top: what dpkg
 * would see on disk mid-upgrade. Used to resolve directory symlinks (merged
 * /usr) and to tell whether a path exists, without touching the host.
 */
export class OverlayView {
  /** Contents of staged files that handlers need to read back (see executor's capture). */
  private readonly stagedContent = new Map<string, Buffer>();

  constructor(private readonly base: ImageFilesystem, private readonly builder: LayerBuilder) {}

  /** Stages a file and remembers its bytes for readFile. */
  async addFile(path: string, meta: { mode: number; uid?: number; gid?: number }, content: Buffer): Promise<void> {
    this.stagedContent.set(path, content);
    await this.builder.addFile(path, meta, content);
  }

  /** File content as the patched image will have it, symlinks followed. */
  async readFile(path: string): Promise<Buffer | undefined> {
    const real = this.realpath(path);
    const entry = this.lstat(real);
    if (!entry || entry.type !== 'file') return undefined;
    if (!entry.staged) return this.base.readFile(real);
    const content = this.stagedContent.get(real);
    if (!content) throw new DebError('STAGED_CONTENT_UNAVAILABLE', `content of staged ${real} was not kept for reading`);
    return content;
  }

  /** Whether a path exists once symlinks are followed (`test -e`). */
  exists(path: string): boolean {
    try {
      const real = this.realpath(path);
      return real === '' || this.lstat(real) !== undefined;
    } catch {
      return false; // symlink loop
    }
  }

  lstat(path: string): OverlayEntry | undefined {
    const staged = this.builder.get(path);
    if (staged) {
      if (staged.type === 'whiteout') return undefined;
      return { type: staged.type, staged: true, ...(staged.linkname !== undefined ? { linkname: staged.linkname } : {}) };
    }
    if (this.hiddenByWhiteout(path)) return undefined;
    const entry: FsEntry | undefined = this.base.lstat(path);
    return entry ? { type: entry.type, staged: false, ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}) } : undefined;
  }

  /** Parent directories resolved through symlinks, chroot-style; the last component kept. */
  resolveParent(path: string): string {
    const parts = path.split('/').filter(Boolean);
    const last = parts.pop();
    if (last === undefined) return '';
    const dir = this.realpath(parts.join('/'));
    return dir ? `${dir}/${last}` : last;
  }

  /** Full resolution through symlinks, chroot-style ('..' stops at the root). */
  realpath(path: string): string {
    let hops = 0;
    const resolved: string[] = [];
    const pending = path.split('/').filter(Boolean);
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '.') continue;
      if (part === '..') { resolved.pop(); continue; }
      const candidate = [...resolved, part].join('/');
      const entry = this.lstat(candidate);
      if (entry?.type === 'symlink' && entry.linkname !== undefined) {
        if (++hops > maxHops) throw new ImageError('SYMLINK_LOOP', `too many symlinks resolving /${path}`);
        const target = entry.linkname.split('/').filter(Boolean);
        if (entry.linkname.startsWith('/')) resolved.length = 0;
        pending.unshift(...target);
        continue;
      }
      resolved.push(part);
    }
    return resolved.join('/');
  }

  isDirectory(path: string): boolean {
    const real = this.realpath(path);
    return real === '' || this.lstat(real)?.type === 'directory';
  }

  /** Child names after the staged changes (added entries included, whited-out ones dropped). */
  children(dir: string): string[] {
    const names = new Set(this.base.readdir(dir));
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const p of this.builder.paths()) {
      if (!p.startsWith(prefix)) continue;
      const rest = p.slice(prefix.length);
      if (rest.length > 0 && !rest.includes('/')) names.add(rest);
    }
    return [...names].filter((n) => this.lstat(`${prefix}${n}`) !== undefined).sort();
  }

  private hiddenByWhiteout(path: string): boolean {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (this.builder.get(parts.slice(0, i).join('/'))?.type === 'whiteout') return true;
    }
    return false;
  }
}

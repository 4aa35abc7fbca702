import type { ImageFilesystem } from '../../../image/filesystem.js';
import type { LayerBuilder } from '../../../image/layer-builder.js';
import type { OverlayView } from '../overlay-view.js';
import { scriptsRequired } from './package-handler.js';

const defaultLibraryDirs = ['lib', 'usr/lib', 'lib64', 'usr/lib64', 'lib32', 'usr/lib32'];
const sharedLibrary = /^lib.*\.so(\.[0-9.]+)?$/;

/**
 * The `ldconfig` trigger rebuilds etc/ld.so.cache, whose content is the set
 * of shared objects in the library directories, not their bytes. If no
 * library file appears, disappears or is repointed there, the cache the
 * trigger would write equals the one the image has; otherwise we refuse
 * rather than ship a stale cache.
 */
export async function checkLibraryCache(args: { base: ImageFilesystem; view: OverlayView; builder: LayerBuilder }): Promise<void> {
  const { base, view, builder } = args;
  const dirs = new Set((await libraryDirs(base)).map((d) => view.realpath(d)));
  for (const path of builder.paths()) {
    const slash = path.lastIndexOf('/');
    const dir = path.slice(0, Math.max(slash, 0));
    const name = path.slice(slash + 1);
    if (!sharedLibrary.test(name) || !dirs.has(view.realpath(dir))) continue;
    const staged = builder.get(path);
    const before = base.lstat(path);
    const changed = staged?.type === 'whiteout'
      ? before !== undefined
      : before === undefined || before.type !== staged?.type || (staged?.type === 'symlink' && before.linkname !== staged.linkname);
    if (changed) throw scriptsRequired('libc-bin', `the ldconfig trigger would change etc/ld.so.cache (${path})`);
  }
}

async function libraryDirs(base: ImageFilesystem): Promise<string[]> {
  const dirs = [...defaultLibraryDirs];
  for (const name of base.readdir('etc/ld.so.conf.d')) {
    if (!name.endsWith('.conf')) continue;
    const text = (await base.readFile(`etc/ld.so.conf.d/${name}`))?.toString('utf8') ?? '';
    dirs.push(...text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/')).map((l) => l.replace(/^\/+/, '')));
  }
  return dirs;
}

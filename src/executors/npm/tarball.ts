import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { EntryMeta, LayerBuilder } from '../../image/layer-builder.js';
import { readAllBytes } from '../../lib/streams.js';
import { NpmError } from './errors.js';

/** What the tarball holds, read once before anything is written: its files and its package.json. */
export interface TarballContents {
  /** Package-relative file paths (after npm's renames), each with the mode npm gives it. */
  readonly files: ReadonlyMap<string, number>;
  /** Directories the files need, package-relative. */
  readonly directories: ReadonlySet<string>;
  readonly manifest: Record<string, unknown>;
}

const maxManifestBytes = 4 * 2 ** 20;
const inMemoryFile = 1 << 20;

/**
 * Reads a package tarball the way npm (pacote) extracts it: the first path
 * component is stripped (`package/`), only regular files are kept (links and
 * devices are dropped, directories are implied), `.gitignore` becomes
 * `.npmignore` unless that exists, and modes are normalised: files 0644,
 * 0755 where the tarball has execute bits or the file is a bin target. An
 * entry naming a path outside the package is refused.
 */
export async function readTarball(path: string, what: string, binTargets: ReadonlySet<string>): Promise<TarballContents> {
  const files = new Map<string, number>();
  const directories = new Set<string>();
  let manifest: Record<string, unknown> | undefined;
  await eachFile(path, what, binTargets, async (name, mode, body) => {
    files.set(name, mode);
    for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) directories.add(name.slice(0, i));
    if (name === 'package.json') {
      const bytes = await readAllBytes(body);
      if (bytes.length > maxManifestBytes) throw new NpmError('NPM_TARBALL_INVALID', `${what}: package.json of ${bytes.length} bytes`);
      try {
        const parsed: unknown = JSON.parse(bytes.toString('utf8'));
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) manifest = parsed as Record<string, unknown>;
      } catch { /* reported below */ }
      return;
    }
    body.resume();
    await new Promise<void>((resolve, reject) => { body.on('end', resolve); body.on('error', reject); });
  });
  if (!manifest) throw new NpmError('NPM_TARBALL_INVALID', `${what}: the tarball has no readable package.json`);
  return { files, directories, manifest };
}

/** Writes the tarball's files under `dest` in the layer (directories 0755), as `readTarball` read them. */
export async function writeTarball(options: {
  builder: LayerBuilder; path: string; what: string; dest: string; binTargets: ReadonlySet<string>; contents: TarballContents;
  owner: { uid: number; gid: number }; mtime?: Date;
}): Promise<void> {
  const { builder, dest, owner, mtime } = options;
  const meta = (mode: number): EntryMeta => ({ mode, uid: owner.uid, gid: owner.gid, ...(mtime ? { mtime } : {}) });
  for (const dir of options.contents.directories) builder.addDirectory(`${dest}/${dir}`, meta(0o755));
  await eachFile(options.path, options.what, options.binTargets, async (name, mode, body, size) => {
    const content: Buffer | Readable = size <= inMemoryFile ? await readAllBytes(body) : body;
    await builder.addFile(`${dest}/${name}`, meta(mode), content);
  });
}

type FileHandler = (name: string, mode: number, body: Readable, size: number) => Promise<void>;

async function eachFile(path: string, what: string, binTargets: ReadonlySet<string>, handler: FileHandler): Promise<void> {
  const extract = tar.extract();
  const sawNpmignore = new Set<string>();
  const source = createReadStream(path);
  const gunzip = createGunzip();
  const done = new Promise<void>((resolve, reject) => {
    const fail = (error: unknown) => {
      source.destroy();
      gunzip.destroy();
      extract.destroy();
      reject(error instanceof NpmError ? error : new NpmError('NPM_TARBALL_INVALID', `${what}: not a gzip tar: ${(error as Error).message}`, { cause: error }));
    };
    extract.on('entry', (header, stream, next) => {
      const body = stream as unknown as Readable;
      const skip = () => { body.on('end', () => next()); body.resume(); };
      let name: string | undefined;
      try {
        name = packagePath(header.name, what);
      } catch (error) {
        fail(error);
        return;
      }
      const isFile = header.type === 'file' || header.type === 'contiguous-file';
      if (name === undefined || !isFile) return skip();
      if (baseName(name) === '.npmignore') sawNpmignore.add(name);
      else if (baseName(name) === '.gitignore') {
        const renamed = name.replace(/\.gitignore$/, '.npmignore');
        if (sawNpmignore.has(renamed)) return skip();
        name = renamed;
      }
      const exe = binTargets.has(name) ? 0o111 : 0;
      const mode = ((((header.mode ?? 0o644) | 0o666) & ~0o022) | exe | 0o600) & 0o777;
      handler(name, mode, body, header.size ?? 0).then(() => next(), fail);
    });
    extract.on('finish', resolve);
    extract.on('error', fail);
    gunzip.on('error', fail);
    source.on('error', fail);
  });
  source.pipe(gunzip).pipe(extract);
  await done;
}

/**
 * The entry's path inside the package (the first component stripped, as
 * `tar --strip 1`), or undefined for the top directory itself; names that
 * climb out (`..`), are absolute or contain NUL are refused.
 */
export function packagePath(entryName: string, what: string): string | undefined {
  if (entryName.includes('\0') || entryName.startsWith('/') || entryName.split(/[\\/]/).includes('..')) {
    throw new NpmError('NPM_TARBALL_PATH_ESCAPE', `${what}: tarball entry ${JSON.stringify(entryName)} points outside the package; refusing to install it`);
  }
  const parts = entryName.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length < 2) return undefined;
  return parts.slice(1).join('/');
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

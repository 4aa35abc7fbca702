import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, chown, lstat, open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DotnetError } from './errors.js';
import { openNupkg } from './nupkg.js';
import { flatContainerPath } from './nuspec.js';
import { updateDotnetApp, type DotnetPackageUpdate } from './update.js';

/**
 * The BuildKit step's half of the .NET update, run by node inside the .NET
 * SDK tooling image with the image's root at `root` (/target): the .nupkg
 * files the step fetched are checked (their `.nupkg.sha512` from the source,
 * or a `.signed` mark the SDK's `dotnet nuget verify` left), then the same
 * `updateDotnetApp` the in-process executor runs decides and writes. Paths
 * are image paths: no symlink is followed under `root` (patchd resolved the
 * app's directory against the image before the build).
 */
export async function applyInRoot(args: {
  readonly root: string;
  readonly depsPath: string;
  readonly downloads: string;
  readonly packages: readonly { readonly name: string; readonly from: string; readonly to: string }[];
}): Promise<{ applied: { name: string; from: string; to: string; replaced: readonly string[] }[]; failed: { name: string; code: string; message: string }[] }> {
  const handles: FileHandle[] = [];
  const failed: { name: string; code: string; message: string }[] = [];
  try {
    const updates: DotnetPackageUpdate[] = [];
    for (const p of args.packages) {
      try {
        const { id, version } = flatContainerPath(p.name, p.to);
        const file = join(args.downloads, `${id}.${version}.nupkg`);
        const sha512 = await sha512Of(file);
        const published = await readFile(`${file}.sha512`, 'utf8').then((t) => t.trim(), () => undefined);
        if (published !== undefined && published !== sha512) throw new DotnetError('NUPKG_HASH_MISMATCH', `${id}.${version}.nupkg: SHA-512 ${sha512}, the source's .nupkg.sha512 says ${published}`);
        if (published === undefined && !(await exists(`${file}.signed`))) throw new DotnetError('NUPKG_UNVERIFIABLE', `${id}.${version}.nupkg: no .nupkg.sha512 from the source and no verified signature`);
        const handle = await open(file, 'r');
        handles.push(handle);
        updates.push({ ...p, nupkg: await openNupkg(handle, `${id}.${version}.nupkg`), sha512 });
      } catch (error) {
        if (!(error instanceof DotnetError)) throw error;
        failed.push({ name: p.name, code: error.code, message: error.message });
      }
    }
    if (updates.length === 0) return { applied: [], failed };
    const depsText = (await readFile(await inside(args.root, args.depsPath))).toString('utf8');
    const result = await updateDotnetApp({
      depsPath: args.depsPath, depsText, packages: updates,
      app: { isFile: async (path) => { try { return (await lstat(await inside(args.root, path))).isFile(); } catch { return false; } } },
    });
    for (const f of result.files) await replaceFile(await inside(args.root, f.path), f.data);
    if (result.depsJson) await replaceFile(await inside(args.root, args.depsPath), result.depsJson);
    failed.push(...result.failed.map((f) => ({ name: f.name, code: f.error.code, message: f.error.message })));
    return { applied: result.applied.map(({ name, from, to, replaced }) => ({ name, from, to, replaced })), failed };
  } finally {
    for (const h of handles) await h.close();
  }
}

/** `root/path` with every component checked not to be a symlink (one could point out of the image). */
async function inside(root: string, path: string): Promise<string> {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new DotnetError('DOTNET_REQUEST_INVALID', `/${path} leaves the image root`);
  let current = root;
  for (const part of parts) {
    current = join(current, part);
    const info = await lstat(current).catch(() => undefined);
    if (!info) break;
    if (info.isSymbolicLink()) throw new DotnetError('DOTNET_UNSUPPORTED', `/${path}: ${current.slice(root.length)} is a symlink`);
  }
  return join(root, ...parts);
}

/** A new file in the old one's place (a new inode: hard links elsewhere keep the old bytes), with its owner and mode. */
async function replaceFile(path: string, data: Buffer): Promise<void> {
  const old = await lstat(path);
  const temp = `${path}.patchd-new`;
  await writeFile(temp, data, { mode: old.mode & 0o7777 });
  await chown(temp, old.uid, old.gid);
  await chmod(temp, old.mode & 0o7777);
  await rename(temp, path);
}

async function sha512Of(file: string): Promise<string> {
  const hash = createHash('sha512');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new DotnetError('NUPKG_NOT_FOUND', `${file}: ${(error as Error).message}`);
  }
  return hash.digest('base64');
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

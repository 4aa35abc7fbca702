import { randomUUID } from 'node:crypto';
import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `bytes` to `path` whole or not at all (a reader never sees half a file, even after a crash). */
export async function writeAtomically(path: string, bytes: string | Uint8Array): Promise<void> {
  const partial = `${path}.${randomUUID()}.partial`;
  try {
    await writeFile(partial, bytes, { mode: 0o600 });
    await rename(partial, path);
  } finally {
    await rm(partial, { force: true });
  }
}

/** Deletes the least recently used files of `dir` (by mtime: readers touch what they use) until it holds at most `maxBytes`. */
export async function evictLeastRecentlyUsed(dir: string, maxBytes: number, keep: (name: string) => boolean = (name) => !name.endsWith('.partial')): Promise<void> {
  const files = (await Promise.all((await readdir(dir)).filter(keep).map(async (name) => {
    const s = await stat(join(dir, name)).catch(() => undefined);
    return s?.isFile() ? { path: join(dir, name), size: s.size, used: s.mtimeMs } : undefined;
  }))).filter((f): f is NonNullable<typeof f> => f !== undefined);
  let total = files.reduce((sum, f) => sum + f.size, 0);
  for (const f of files.sort((a, b) => a.used - b.used)) {
    if (total <= maxBytes) break;
    await rm(f.path, { force: true });
    total -= f.size;
  }
}

import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { evictLeastRecentlyUsed } from '../../lib/cache-dir.js';
import { verifyingStream } from '../../oci/verify.js';
import type { AptRepositories, PackageCandidate } from '../../distro/deb/repository/index.js';
import { AptError } from '../../distro/deb/repository/index.js';

/**
 * Downloaded .debs kept by their SHA256 (the Packages entry's), so the same
 * update patched into many images is fetched once. A hit is re-hashed on the
 * way in (a cache is not a trust boundary); the least recently used files go
 * when the cache passes `maxBytes`.
 */
export async function fetchDeb(args: { repositories: AptRepositories; candidate: PackageCandidate; cacheDir: string; maxBytes?: number }): Promise<string> {
  const { candidate } = args;
  const dir = join(args.cacheDir, 'debs');
  const path = join(dir, `${candidate.sha256}.deb`);
  await mkdir(dir, { recursive: true });
  const expected = { digest: `sha256:${candidate.sha256}`, size: candidate.size };
  const mismatch = (_code: string, message: string) => new AptError('DEB_HASH_MISMATCH', `${candidate.url}: ${message}`);
  try {
    await pipeline(createReadStream(path), verifyingStream(expected, mismatch), async (source: AsyncIterable<unknown>) => { for await (const _ of source) { /* verify only */ } });
    const now = new Date();
    await utimes(path, now, now); // recency for eviction
    return path;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') await rm(path, { force: true }); // corrupt: fetch again
  }
  const partial = join(dir, `${candidate.sha256}.${randomUUID()}.partial`);
  try {
    await pipeline(await args.repositories.openDeb(candidate), createWriteStream(partial));
    await rename(partial, path);
  } finally {
    await rm(partial, { force: true });
  }
  await evictLeastRecentlyUsed(dir, args.maxBytes ?? 2 * 2 ** 30, (name) => name.endsWith('.deb'));
  return path;
}

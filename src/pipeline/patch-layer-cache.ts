import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageFilesystem } from '../image/filesystem.js';
import type { Layer } from '../image/layer.js';
import type { WrittenLayer } from '../image/layer-builder.js';
import { answersSame, type RecordedRead } from '../image/read-record.js';
import { evictLeastRecentlyUsed, writeAtomically } from '../lib/cache-dir.js';
import type { Logger } from '../lib/log.js';
import { verifyingStream } from '../oci/verify.js';
import type { PlannedPackage } from '../plan/types.js';

/**
 * Patch layers the in-process Debian executor built, kept in the cache dir
 * and reused for the next image that needs the same plan and answers every
 * read the build made of its base the same way (src/image/read-record.ts):
 * the common push — the same base under a new app layer — then costs a scan
 * of the new layer and a manifest, not an unpack and configure. The key
 * holds the plan (each .deb by its SHA256), the layer's media type, the
 * error mode and a hash of the executor's own code, so an upgraded patchd
 * never reuses what an older one built.
 */
export interface PatchLayerCache {
  /** The layer built for `key` from a base that reads the same as `fs`, if one is kept. */
  find(key: string, fs: ImageFilesystem): Promise<(Layer & { readonly diffId: string }) | undefined>;
  /** Keeps `layer` (verified) for `key`, with the reads of the base it was built from. */
  keep(key: string, reads: readonly RecordedRead[], layer: WrittenLayer): Promise<void>;
}

interface Variant {
  readonly reads: readonly RecordedRead[];
  readonly layer: { readonly mediaType: string; readonly digest: string; readonly size: number; readonly diffId: string };
}

/** Builds kept per key: different bases (or base versions) under one plan. */
const variantsPerKey = 4;
const defaultMaxBytes = 2 * 2 ** 30;

export function patchLayerCache(options: { cacheDir: string; logger: Logger; maxBytes?: number }): PatchLayerCache {
  const dir = join(options.cacheDir, 'patch-layers');
  const blobs = join(dir, 'blobs');
  const indexPath = (key: string) => join(dir, `${key}.json`);
  const blobPath = (digest: string) => join(blobs, digest.replace(':', '-'));
  const readVariants = async (key: string): Promise<Variant[]> => {
    try {
      return JSON.parse(await readFile(indexPath(key), 'utf8')) as Variant[];
    } catch {
      return []; // none yet, or a torn file from a crash: rebuilt on the next keep
    }
  };

  return {
    async find(key, fs) {
      for (const variant of await readVariants(key)) {
        if (!answersSame(fs, variant.reads)) continue;
        const { layer } = variant;
        const path = blobPath(layer.digest);
        const size = await stat(path).then((s) => s.size, () => undefined);
        if (size !== layer.size) continue;
        const now = new Date();
        await utimes(path, now, now).catch(() => undefined); // recency for eviction
        // A cache is not a trust boundary: the blob is re-hashed whenever it is read.
        return { ...layer, open: async () => createReadStream(path).pipe(verifyingStream({ digest: layer.digest, size: layer.size })) };
      }
      return undefined;
    },

    async keep(key, reads, layer) {
      try {
        await mkdir(blobs, { recursive: true });
        const path = blobPath(layer.digest);
        if (!(await stat(path).then(() => true, () => false))) {
          const partial = `${path}.${randomUUID()}.partial`;
          await link(layer.path, partial).catch(() => copyFile(layer.path, partial));
          await rename(partial, path);
        }
        const variant: Variant = { reads, layer: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, diffId: layer.diffId } };
        const variants = [variant, ...(await readVariants(key)).filter((v) => v.layer.digest !== layer.digest)].slice(0, variantsPerKey);
        await writeAtomically(indexPath(key), JSON.stringify(variants));
        await evictLeastRecentlyUsed(blobs, options.maxBytes ?? defaultMaxBytes);
      } catch (error) {
        // Only a later push's speed depends on this.
        options.logger.warn({ err: error, digest: layer.digest }, 'could not keep the patch layer for reuse');
      }
    },
  };
}

/** The cache key of an in-process Debian build: what it installs, how the layer is written, and the code that writes it. */
export async function debPatchLayerKey(args: { packages: readonly PlannedPackage[]; mediaType: string; ignoreErrors: boolean }): Promise<string> {
  return createHash('sha256').update(JSON.stringify({
    code: await executorCode(),
    mediaType: args.mediaType,
    ignoreErrors: args.ignoreErrors,
    packages: args.packages.map((p) => [p.name, p.architecture, p.from, p.to, p.candidate.sha256]),
  })).digest('hex');
}

let codeHash: Promise<string> | undefined;

/** A hash of the modules whose behaviour shapes the layer (the executor, dpkg's formats, the image and layer writers). */
function executorCode(): Promise<string> {
  codeHash ??= (async () => {
    const hash = createHash('sha256');
    for (const folder of ['../executors/deb/', '../distro/deb/', '../image/']) {
      const root = fileURLToPath(new URL(folder, import.meta.url));
      const files = (await readdir(root, { recursive: true })).filter((f) => /\.(js|ts)$/.test(f)).sort();
      for (const file of files) hash.update(`${folder}${file}\0`).update(await readFile(join(root, file)));
    }
    return hash.digest('hex');
  })();
  return codeHash;
}

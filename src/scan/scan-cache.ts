import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { LRUCache } from 'lru-cache';
import type { FsSnapshot } from '../image/filesystem.js';
import type { Layer } from '../image/layer.js';
import { evictLeastRecentlyUsed, writeAtomically } from '../lib/cache-dir.js';
import type { Logger } from '../lib/log.js';
import type { CollectorSnapshot } from './inventory/collector.js';

/**
 * What a scan read from an image's first layers: the merged view and the
 * package records found, keyed by those layers' digests in order. A base
 * shared by many images (and the original under its patched image, and a
 * retried job) is read once; a later scan reads only the layers after it.
 * Kept serialized (v8), in memory for a running service and on disk (the
 * cache dir) across processes, each with least-recently-used eviction: a
 * scan gets objects of its own and the cache holds a few compact buffers.
 */
export interface ScanCache {
  /** A copy of the snapshot of the longest prefix of `layers` kept, read with `capture` (or any capture, when the scan keeps no files): the caller's to change. */
  longestPrefix(layers: readonly Layer[], capture: string | undefined): Promise<ScanSnapshot | undefined>;
  /** Keeps the state after the first `count` layers; it is serialized before this returns control, so the caller may read on at once. */
  keep(layers: readonly Layer[], count: number, snapshot: ScanSnapshot): Promise<void>;
}

export interface ScanSnapshot {
  readonly fs: FsSnapshot;
  readonly inventory: CollectorSnapshot;
  /** Which files the scan kept in memory (the caller's name for its capture rule); undefined for none. */
  readonly capture: string | undefined;
}

/** Bumped whenever what a snapshot holds changes shape or meaning. */
const format = 2;
const memoryBytes = 256 * 2 ** 20;
const diskBytes = 2 * 2 ** 30;

const byDir = new Map<string, ScanCache>();

/** One cache per cache dir per process, shared by every scan in it. */
export function scanCacheFor(cacheDir: string, logger?: Logger): ScanCache {
  let cache = byDir.get(cacheDir);
  if (!cache) byDir.set(cacheDir, (cache = createScanCache({ dir: join(cacheDir, 'scans'), ...(logger ? { logger } : {}) })));
  return cache;
}

export function createScanCache(options: { dir: string; logger?: Logger; memoryBytes?: number; diskBytes?: number }): ScanCache {
  const memory = new LRUCache<string, Buffer>({ maxSize: options.memoryBytes ?? memoryBytes, sizeCalculation: (b) => Math.max(1, b.length) });
  // Each layer as the manifest and config describe it: a descriptor that lies about its size or media type, or a config
  // with another diff_id, is not the layer that was read (and verified) before, so it is read (and refused) again.
  const chainKey = (layers: readonly Layer[], count: number) => createHash('sha256')
    .update(`${format}\n${layers.slice(0, count).map((l) => `${l.digest} ${l.size} ${l.mediaType} ${l.diffId ?? '-'}`).join('\n')}`).digest('hex');
  const fileName = (chain: string, capture: string | undefined) => `${chain}.${capture ?? 'none'}.v8`;

  const fromDisk = async (name: string): Promise<{ bytes: Buffer; snapshot: ScanSnapshot } | undefined> => {
    const path = join(options.dir, name);
    try {
      const bytes = await readFile(path);
      const snapshot = deserialize(bytes) as ScanSnapshot;
      const now = new Date();
      await utimes(path, now, now).catch(() => undefined);
      return { bytes, snapshot };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') await rm(path, { force: true }); // damaged: read the layers again
      return undefined;
    }
  };

  const find = async (chain: string, capture: string | undefined): Promise<ScanSnapshot | undefined> => {
    const exact = memory.get(`${chain}.${capture ?? 'none'}`);
    if (exact) return deserialize(exact) as ScanSnapshot;
    // A scan that keeps no files can start from any: captured files only save a later read.
    if (capture === undefined) for (const [key, bytes] of memory.entries()) if (key.startsWith(`${chain}.`)) return deserialize(bytes) as ScanSnapshot;
    const names = capture === undefined
      ? (await readdir(options.dir).catch(() => [] as string[])).filter((n) => n.startsWith(`${chain}.`) && n.endsWith('.v8'))
      : [fileName(chain, capture)];
    for (const name of names) {
      const found = await fromDisk(name);
      if (found) {
        memory.set(`${chain}.${found.snapshot.capture ?? 'none'}`, found.bytes);
        return found.snapshot;
      }
    }
    return undefined;
  };

  return {
    async longestPrefix(layers, capture) {
      for (let count = layers.length; count > 0; count--) {
        const snapshot = await find(chainKey(layers, count), capture);
        if (snapshot?.fs.layers === count) return snapshot;
      }
      return undefined;
    },

    async keep(layers, count, snapshot) {
      const bytes = serialize(snapshot); // before the first await: the caller's scan reads on
      const chain = chainKey(layers, count);
      memory.set(`${chain}.${snapshot.capture ?? 'none'}`, bytes);
      try {
        await mkdir(options.dir, { recursive: true });
        await writeAtomically(join(options.dir, fileName(chain, snapshot.capture)), bytes);
        await evictLeastRecentlyUsed(options.dir, options.diskBytes ?? diskBytes);
      } catch (error) {
        options.logger?.warn({ err: error }, 'could not keep a scan snapshot on disk');
      }
    },
  };
}

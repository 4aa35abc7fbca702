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
 * Kept in memory for a running service and on disk (the cache dir) across
 * processes, each with least-recently-used eviction.
 */
export interface ScanCache {
  /** The snapshot of the longest prefix of `layers` kept, read with `capture` (or any capture, when the scan keeps no files). */
  longestPrefix(layers: readonly Layer[], capture: string | undefined): Promise<ScanSnapshot | undefined>;
  keep(layers: readonly Layer[], count: number, snapshot: ScanSnapshot): Promise<void>;
}

export interface ScanSnapshot {
  readonly fs: FsSnapshot;
  readonly inventory: CollectorSnapshot;
  /** Which files the scan kept in memory (the caller's name for its capture rule); undefined for none. */
  readonly capture: string | undefined;
}

/** Bumped whenever what a snapshot holds changes shape or meaning. */
const format = 1;
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
  const memory = new LRUCache<string, ScanSnapshot>({ maxSize: options.memoryBytes ?? memoryBytes, sizeCalculation: (s) => Math.max(1, sizeOf(s)) });
  const chainKey = (layers: readonly Layer[], count: number) => createHash('sha256').update(`${format}\n${layers.slice(0, count).map((l) => l.digest).join('\n')}`).digest('hex');
  const fileName = (chain: string, capture: string | undefined) => `${chain}.${capture ?? 'none'}.v8`;

  const fromDisk = async (name: string): Promise<ScanSnapshot | undefined> => {
    const path = join(options.dir, name);
    try {
      const snapshot = deserialize(await readFile(path)) as ScanSnapshot;
      const now = new Date();
      await utimes(path, now, now).catch(() => undefined);
      return snapshot;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') await rm(path, { force: true }); // damaged: read the layers again
      return undefined;
    }
  };

  const find = async (chain: string, capture: string | undefined): Promise<ScanSnapshot | undefined> => {
    const exact = memory.get(`${chain}.${capture ?? 'none'}`);
    if (exact) return exact;
    // A scan that keeps no files can start from any: captured files only save a later read.
    if (capture === undefined) for (const [key, snapshot] of memory.entries()) if (key.startsWith(`${chain}.`)) return snapshot;
    const names = capture === undefined
      ? (await readdir(options.dir).catch(() => [] as string[])).filter((n) => n.startsWith(`${chain}.`) && n.endsWith('.v8'))
      : [fileName(chain, capture)];
    for (const name of names) {
      const snapshot = await fromDisk(name);
      if (snapshot) {
        memory.set(`${chain}.${snapshot.capture ?? 'none'}`, snapshot);
        return snapshot;
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
      const chain = chainKey(layers, count);
      memory.set(`${chain}.${snapshot.capture ?? 'none'}`, snapshot);
      try {
        await mkdir(options.dir, { recursive: true });
        await writeAtomically(join(options.dir, fileName(chain, snapshot.capture)), serialize(snapshot));
        await evictLeastRecentlyUsed(options.dir, options.diskBytes ?? diskBytes);
      } catch (error) {
        options.logger?.warn({ err: error }, 'could not keep a scan snapshot on disk');
      }
    },
  };
}

/** Roughly the heap a snapshot holds: its captured files and a few hundred bytes per entry. */
function sizeOf(snapshot: ScanSnapshot): number {
  let bytes = 0;
  for (const content of snapshot.fs.captured.values()) bytes += content.length;
  return bytes + snapshot.fs.nodes.size * 300 + snapshot.inventory.records.size * 500;
}

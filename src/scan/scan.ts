import { ImageFilesystem, type LoadOptions } from '../image/filesystem.js';
import type { Layer } from '../image/layer.js';
import { InventoryCollector } from './inventory/collector.js';
import type { InstalledPackage, Inventory, OsInfo } from './inventory/types.js';
import { matchOsv, osvEcosystemFor } from './match.js';
import { findingsFromHarborReport } from './sources/harbor.js';
import type { OsvDatabase } from './sources/osv.js';
import { findingsFromTrivyReport } from './sources/trivy.js';
import type { Finding } from './types.js';
import type { ScanCache } from './scan-cache.js';

/** Where findings come from: a report the user or registry has, else OSV advisories. */
export interface AdvisorySources {
  readonly osv?: OsvDatabase;
  readonly report?: { readonly kind: 'trivy' | 'harbor'; readonly json: unknown };
}

/**
 * One streaming pass over the layers: the merged view (with `capture`d files)
 * and the inventory. With a cache, it starts from the longest prefix of the
 * layers read before (same digests, same capture) and keeps what it reads:
 * the image without its top layer, and the whole image.
 */
export async function scanLayers(
  layers: readonly Layer[],
  options: LoadOptions & { tmpDir?: string; cache?: { readonly store: ScanCache; readonly capture?: string } } = {},
): Promise<{ fs: ImageFilesystem; inventory: Inventory }> {
  // Custom limits (a test's, a stricter policy's) are always checked against the layers themselves.
  const cache = options.limits ? undefined : options.cache;
  const capture = cache?.capture === undefined ? undefined : `${cache.capture}-${options.maxCaptureBytes ?? 'default'}`;
  const start = await cache?.store.longestPrefix(layers, capture);
  const collector = new InventoryCollector(options.tmpDir ? { tmpDir: options.tmpDir } : {}, start?.inventory);
  try {
    const fs = ImageFilesystem.resume(layers, { ...options, inspector: collector }, start?.fs);
    while (fs.applied < layers.length) {
      await fs.applyNext();
      const inventory = cache && fs.applied >= layers.length - 1 ? collector.state() : undefined;
      if (inventory) await cache!.store.keep(layers, fs.applied, { fs: fs.state(), inventory, capture });
    }
    return { fs, inventory: await collector.finish(fs) };
  } finally {
    await collector.dispose();
  }
}

export function collectFindings(inventory: Inventory, sources: AdvisorySources): Finding[] {
  if (sources.report?.kind === 'trivy') return findingsFromTrivyReport(sources.report.json, inventory);
  if (sources.report?.kind === 'harbor') return findingsFromHarborReport(sources.report.json, inventory);
  return sources.osv ? matchOsv(inventory.packages, inventory.os, sources.osv) : [];
}

/**
 * Whether advisories speak for this package at all. Without a report or OSV
 * data for its ecosystem, an OS package is judged by what its own
 * repositories offer (Copa's no-report mode).
 */
export function hasAdvisoryData(pkg: InstalledPackage, os: OsInfo | undefined, sources: AdvisorySources): boolean {
  if (sources.report) return true;
  const ecosystem = osvEcosystemFor(pkg, os);
  return ecosystem !== undefined && sources.osv !== undefined && sources.osv.covers(ecosystem);
}

import type { Dispatcher } from 'undici';
import { DpkgDatabase, readUserDatabase } from '../distro/deb/dpkg-database.js';
import { loadImageRepositories } from '../distro/deb/repository/for-image.js';
import { resolveImage } from '../image/resolve.js';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
import { formatReference, type Reference } from '../oci/reference.js';
import { resolveDebUpgrades } from '../plan/deb-upgrades.js';
import type { ScanResult } from '../scan/format.js';
import { collectFindings, hasAdvisoryData, scanLayers, type AdvisorySources } from '../scan/scan.js';
import { scanCacheFor } from '../scan/scan-cache.js';
import type { Finding } from '../scan/types.js';
import type { PackageMirrors } from './types.js';

/** Files the "updates available" check needs from the first pass (apt sources, keyrings, dpkg's database). */
const aptFiles = /^(etc\/apt\/|etc\/passwd$|etc\/group$|var\/lib\/dpkg\/|usr\/share\/keyrings\/)/;

/**
 * `patchd scan`: the inventory and findings of every platform of an image.
 * Debian images whose OS has no advisory data get "newer version in the
 * image's own repositories" findings instead (`updates`), as `patch` would act on.
 */
export async function scanImage(
  deps: { client: RegistryClient; dispatcher: Dispatcher; logger: Logger; cacheDir: string; tmpDir: string; mirrors?: PackageMirrors },
  options: { image: Reference; advisories: AdvisorySources; updates: boolean },
): Promise<ScanResult[]> {
  const resolved = await resolveImage(deps.client, options.image);
  const results: ScanResult[] = [];
  for (const target of resolved.platforms) {
    const { manifest, image } = await target.load();
    const platform = target.platform;
    const { fs, inventory } = await scanLayers(image.layers, {
      capture: (p) => options.updates && aptFiles.test(p), maxCaptureBytes: 4 * 2 ** 20, logger: deps.logger, tmpDir: deps.tmpDir,
      cache: { store: scanCacheFor(deps.cacheDir, deps.logger), ...(options.updates ? { capture: 'apt' } : {}) },
    });
    const findings: Finding[] = collectFindings(inventory, options.advisories);
    const osPackage = inventory.packages.find((p) => p.class === 'os' && p.ecosystem === 'debian');
    if (options.updates && osPackage && !hasAdvisoryData(osPackage, inventory.os, options.advisories)) {
      const db = await DpkgDatabase.read(fs, await readUserDatabase(fs));
      const repositories = db ? await loadImageRepositories({ fs, db, config: image.config, dispatcher: deps.dispatcher, cacheDir: deps.cacheDir, logger: deps.logger, ...(deps.mirrors?.apt ? { mirrors: deps.mirrors.apt } : {}) }) : undefined;
      if (db && repositories) {
        const plan = resolveDebUpgrades({ installed: db.packages, repositories, request: { kind: 'all' } });
        for (const p of plan.packages) {
          const pkg = inventory.packages.find((i) => i.ecosystem === 'debian' && i.name === p.name && (i.architecture === p.architecture || i.architecture === ''));
          if (!pkg) continue;
          findings.push({ package: pkg, id: 'UPDATE-AVAILABLE', aliases: [], fixedVersions: [p.to], severity: 'UNKNOWN', source: 'repository', summary: p.reasons.join(', ') });
        }
      }
    }
    results.push({ image: formatReference(options.image), digest: manifest.digest, platform, inventory, findings });
  }
  return results;
}

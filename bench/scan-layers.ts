// Helper for scan.bench.ts: scans gzip layer files (in order, as one image)
// in this process and prints what it found, so /usr/bin/time can measure the
// scanner alone (no registry, no HTTP).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { scanLayers } from '../src/scan/scan.js';
import { MediaType } from '../src/oci/media-types.js';

const files = process.argv.slice(2);
const layers = await Promise.all(files.map(async (path) => ({
  mediaType: MediaType.ociLayerGzip, digest: `file:${path}`, size: (await stat(path)).size, open: async () => createReadStream(path, { highWaterMark: 1 << 20 }),
})));
const { inventory } = await scanLayers(layers);
const byEcosystem: Record<string, number> = {};
for (const p of inventory.packages) byEcosystem[p.ecosystem] = (byEcosystem[p.ecosystem] ?? 0) + 1;
console.log(JSON.stringify({ packages: inventory.packages.length, byEcosystem, warnings: inventory.warnings.length }));

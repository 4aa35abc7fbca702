import { randomUUID } from 'node:crypto';
import type { InstalledPackage, Inventory } from './inventory/types.js';

/** One scanned platform manifest (a ScanResult is one). */
export interface BomPlatform {
  readonly platform: string;
  readonly digest: string;
  readonly inventory: Inventory;
}

/** The subject of a BOM: the scanned image (its purl, `pkg:oci/...@digest`, when the caller knows where it lives). */
export interface BomSubject {
  readonly name: string;
  /** The digest scanned; unknown for an index named by tag (its platforms' digests are in their components). */
  readonly digest?: string;
  readonly purl?: string;
}

/**
 * A CycloneDX 1.6 JSON BOM of what the scan found: the image as
 * metadata.component, every package as a component (purl, name, version,
 * where it was found as properties). A multi-platform image gets one
 * container component per platform holding that platform's packages.
 * Written as plain JSON (the format is small); test/ validates it against
 * the official 1.6 schema.
 */
export function cycloneDxBom(subject: BomSubject, results: readonly BomPlatform[], options: { readonly toolVersion?: string; readonly now?: Date }): object {
  const single = results.length === 1;
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: (options.now ?? new Date()).toISOString(),
      tools: { components: [{ type: 'application', name: 'patchd', ...(options.toolVersion ? { version: options.toolVersion } : {}) }] },
      component: {
        'bom-ref': 'image',
        type: 'container',
        name: subject.name,
        ...(subject.digest ? { version: subject.digest } : {}),
        ...(subject.purl ? { purl: subject.purl } : {}),
        ...(single ? { properties: platformProperties(results[0]!) } : {}),
      },
    },
    components: single
      ? packageComponents(results[0]!)
      : results.map((r) => ({
        'bom-ref': `platform:${r.platform}`,
        type: 'container',
        name: `${subject.name} (${r.platform})`,
        version: r.digest,
        properties: platformProperties(r),
        components: packageComponents(r),
      })),
  };
}

function platformProperties(r: BomPlatform): { name: string; value: string }[] {
  return [
    { name: 'patchd:platform', value: r.platform },
    { name: 'patchd:manifest-digest', value: r.digest },
    ...(r.inventory.os ? [{ name: 'patchd:os', value: `${r.inventory.os.id}${r.inventory.os.versionId ? ` ${r.inventory.os.versionId}` : ''}` }] : []),
  ];
}

function packageComponents(r: BomPlatform): object[] {
  const os = r.inventory.os;
  return [
    ...(os ? [{ type: 'operating-system', name: os.id, ...(os.versionId ? { version: os.versionId } : {}), ...(os.prettyName ? { description: os.prettyName } : {}) }] : []),
    ...r.inventory.packages.map((p) => ({
      type: p.goMainModule ? 'application' : 'library',
      name: p.name,
      version: p.version,
      purl: p.purl,
      properties: packageProperties(p),
    })),
  ];
}

/** Where each package was found and how patchd classed it. */
function packageProperties(p: InstalledPackage): { name: string; value: string }[] {
  const props: [string, string | undefined][] = [
    ['patchd:path', p.path],
    ['patchd:ecosystem', p.ecosystem],
    ['patchd:class', p.class],
    ['patchd:location', p.location],
    ['patchd:source-name', p.sourceName],
    ['patchd:source-version', p.sourceVersion],
    ['patchd:architecture', p.architecture],
  ];
  return props.filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '').map(([name, value]) => ({ name, value }));
}

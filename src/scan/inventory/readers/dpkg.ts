import { field, parseParagraphs } from '../../../distro/deb/control.js';
import type { PackageRecord } from '../types.js';

/**
 * dpkg's `status` file, or one file of distroless `status.d/` (a stanza per
 * file, usually without a Status field: everything listed is installed).
 */
export function readDpkgStatus(text: string, path: string): PackageRecord[] {
  const out: PackageRecord[] = [];
  for (const p of parseParagraphs(text)) {
    const name = field(p, 'Package');
    const version = field(p, 'Version');
    if (!name || !version) continue;
    const status = field(p, 'Status');
    // 'deinstall ok config-files' and the like leave no files behind.
    if (status !== undefined && !status.endsWith(' installed')) continue;
    const source = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(field(p, 'Source') ?? '');
    out.push({
      ecosystem: 'debian', class: 'os', name, version: version.trim(), path,
      architecture: field(p, 'Architecture') ?? '',
      sourceName: source?.[1] ?? name,
      sourceVersion: source?.[2] ?? version.trim(),
    });
  }
  return out;
}

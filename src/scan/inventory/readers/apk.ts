import type { PackageRecord } from '../types.js';

/** apk's installed database: blank-line separated blocks of `X:value` lines (P name, V version, A arch, o origin). */
export function readApkInstalled(text: string, path: string): PackageRecord[] {
  const out: PackageRecord[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      if (line.length > 2 && line[1] === ':' && !fields.has(line[0]!)) fields.set(line[0]!, line.slice(2));
    }
    const name = fields.get('P');
    const version = fields.get('V');
    if (!name || !version) continue;
    out.push({
      ecosystem: 'alpine', class: 'os', name, version, path,
      architecture: fields.get('A') ?? '',
      sourceName: fields.get('o') ?? name,
      sourceVersion: version,
    });
  }
  return out;
}

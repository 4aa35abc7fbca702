import type { OsInfo } from '../types.js';

/** os-release(5): shell-style KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): OsInfo | undefined {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!.trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    }
    values.set(m[1]!, value);
  }
  const id = values.get('ID');
  if (!id) return undefined;
  const versionId = values.get('VERSION_ID');
  const versionCodename = values.get('VERSION_CODENAME');
  const prettyName = values.get('PRETTY_NAME');
  return {
    id: id.toLowerCase(),
    idLike: (values.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    ...(versionId ? { versionId } : {}),
    ...(versionCodename ? { versionCodename } : {}),
    ...(prettyName ? { prettyName } : {}),
  };
}

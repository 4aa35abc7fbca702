import type { PackageRecord } from '../types.js';
import { InventoryError } from '../errors.js';

/** Copa's discovery rule: deps.json anywhere but SDK tooling and package caches. */
export const dotnetDepsPath = /\.deps\.json$/;
const excluded = /^(usr\/share\/|usr\/local\/share\/|root\/\.nuget\/|tmp\/)/;

export function isDotnetAppDeps(path: string): boolean {
  return dotnetDepsPath.test(path) && !excluded.test(path);
}

/**
 * `libraries` of a deps.json: "Name/Version" keys of type "package", and the
 * runtime packs a self-contained app carries ("runtimepack.Name/Version"), so
 * the planner can say why it leaves them alone. The app's own "project" is skipped.
 */
export function readDotnetDeps(text: string, path: string): PackageRecord[] {
  let json: unknown;
  try { json = JSON.parse(text); } catch { throw new InventoryError('RECORD_INVALID', 'not valid JSON'); }
  const libraries = (json as { libraries?: Record<string, { type?: string }> } | null)?.libraries;
  if (!libraries || typeof libraries !== 'object') return [];
  const location = path.slice(0, path.lastIndexOf('/') + 1).replace(/\/$/, '') || '.';
  const out: PackageRecord[] = [];
  for (const [key, lib] of Object.entries(libraries)) {
    if (lib?.type !== 'package' && lib?.type !== 'runtimepack') continue;
    const slash = key.lastIndexOf('/');
    if (slash <= 0) continue;
    const name = key.slice(0, slash).replace(/^runtimepack\./, '');
    out.push({ ecosystem: 'nuget', class: 'library', name, version: key.slice(slash + 1), path, location });
  }
  return out;
}

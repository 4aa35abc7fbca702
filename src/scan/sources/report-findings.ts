import type { InstalledPackage, Inventory } from '../inventory/types.js';
import { normalisePythonName } from '../inventory/readers/python.js';
import { normaliseSeverity, type Finding, type FindingSource } from '../types.js';
import type { Ecosystem } from '../../versions/index.js';

/** One row of an external report, before it is tied to an installed package. */
export interface ReportRow {
  readonly id: string;
  readonly name: string;
  readonly installed?: string;
  readonly fixed: readonly string[];
  readonly severity?: string;
  readonly summary?: string;
  readonly ecosystem?: Ecosystem;
  /** Where the report says the package is (Trivy's PkgPath). */
  readonly path?: string;
}

/**
 * Ties report rows to the inventory: same name (as the ecosystem compares
 * names), same installed version, and the same file when the report names
 * one. A row the inventory cannot place becomes a package of its own, so a
 * report is never silently dropped.
 */
export function findingsFromRows(rows: readonly ReportRow[], inventory: Inventory | undefined, source: FindingSource): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    const candidates = (inventory?.packages ?? []).filter((p) =>
      (row.ecosystem === undefined || p.ecosystem === row.ecosystem)
      && sameName(p, row.name)
      && (row.installed === undefined || p.version === row.installed || stripEpoch(p.version) === row.installed));
    const where = row.path?.replace(/^\//, '');
    const located = where ? candidates.filter((p) => p.path === where || p.path.startsWith(`${where}/`) || (p.location !== undefined && p.location === where)) : [];
    const packages = located.length > 0 ? located : candidates.length > 0 ? candidates : [synthetic(row)];
    for (const pkg of packages) {
      const key = `${pkg.path}\0${pkg.name}\0${row.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        package: pkg, id: row.id, aliases: [], fixedVersions: row.fixed, severity: normaliseSeverity(row.severity), source,
        ...(row.summary ? { summary: row.summary } : {}),
      });
    }
  }
  return out;
}

function sameName(p: InstalledPackage, name: string): boolean {
  if (p.name === name) return true;
  if (p.ecosystem === 'pypi') return p.name === normalisePythonName(name);
  if (p.ecosystem === 'nuget') return p.name.toLowerCase() === name.toLowerCase();
  return false;
}

function stripEpoch(version: string): string {
  return version.replace(/^\d+:/, '');
}

function synthetic(row: ReportRow): InstalledPackage {
  const ecosystem = row.ecosystem ?? 'debian';
  const library = ecosystem === 'pypi' || ecosystem === 'npm' || ecosystem === 'go' || ecosystem === 'nuget';
  return {
    ecosystem, class: library ? 'library' : 'os', name: row.name, version: row.installed ?? '', path: row.path?.replace(/^\//, '') ?? '',
    purl: '', ...(library ? {} : { sourceName: row.name }),
  };
}

/** "1.26.17, 2.0.6" → ['1.26.17', '2.0.6']. */
export function splitFixedVersions(value: string | undefined): string[] {
  return (value ?? '').split(',').map((v) => v.trim()).filter(Boolean);
}

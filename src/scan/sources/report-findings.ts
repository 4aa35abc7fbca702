import type { InstalledPackage, Inventory } from '../inventory/types.js';
import { isSystemDistPackages, normalisePythonName, pythonPlacement } from '../inventory/readers/python.js';
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
  /** Where the report says the package is (Trivy's PkgPath, or the result's file for binaries, go.mod files and manifests). */
  readonly path?: string;
  /**
   * What the row describes, when the report says (Trivy's result Type): a
   * module a go.mod requires, a module compiled into a binary, or an entry of
   * a source manifest or lockfile (`manifestType` names which). Absent: an
   * installed package.
   */
  readonly describes?: 'go.mod' | 'go-binary' | 'source-manifest';
  readonly manifestType?: string;
}

/**
 * Ties report rows to the inventory: same name (as the ecosystem compares
 * names), same installed version, and the same file when the report names
 * one. A row the inventory cannot place becomes a package of its own, so a
 * report is never silently dropped; so does a row naming a file where the
 * inventory has no such package (a copy elsewhere is another install, with
 * its own plan). Source-manifest rows are never tied to installed packages:
 * they describe a file the image was built from.
 */
export function findingsFromRows(rows: readonly ReportRow[], inventory: Inventory | undefined, source: FindingSource): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    const candidates = row.describes === 'source-manifest' ? [] : (inventory?.packages ?? []).filter((p) =>
      (row.ecosystem === undefined || p.ecosystem === row.ecosystem)
      && sameName(p, row.name)
      && sameKind(p, row)
      && (row.installed === undefined || p.version === row.installed || stripEpoch(p.version) === row.installed));
    const where = row.path?.replace(/^\//, '');
    const located = where ? candidates.filter((p) => p.path === where || p.path.startsWith(`${where}/`) || (p.location !== undefined && p.location === where)) : [];
    const packages = located.length > 0 ? located : candidates.length > 0 && !where ? candidates : [synthetic(row)];
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

/** A go.mod row is about go.mod requirements, a binary row about binaries' modules; other rows about any install. */
function sameKind(p: InstalledPackage, row: ReportRow): boolean {
  if (row.describes === 'go.mod') return p.goOrigin === 'go.mod';
  if (row.describes === 'go-binary') return p.goOrigin !== 'go.mod';
  return true;
}

function stripEpoch(version: string): string {
  return version.replace(/^\d+:/, '');
}

function synthetic(row: ReportRow): InstalledPackage {
  const ecosystem = row.ecosystem ?? 'debian';
  const library = ecosystem === 'pypi' || ecosystem === 'npm' || ecosystem === 'go' || ecosystem === 'nuget';
  const path = row.path?.replace(/^\//, '') ?? '';
  return {
    ecosystem, class: library ? 'library' : 'os', name: row.name, version: row.installed ?? '', path,
    purl: '', ...(library ? {} : { sourceName: row.name }), ...placement(row, ecosystem, path),
  };
}

/** What the row's file says about where the package lives, as the inventory would have put it. */
function placement(row: ReportRow, ecosystem: Ecosystem, path: string): Partial<InstalledPackage> {
  if (row.describes === 'source-manifest') return { sourceManifest: { file: path, type: row.manifestType ?? 'manifest' } };
  if (row.describes === 'go.mod') return { goOrigin: 'go.mod', location: path.slice(0, path.lastIndexOf('/') + 1).replace(/\/$/, '') || '.' };
  if (row.describes === 'go-binary') return { goOrigin: 'binary', ...(path ? { location: path } : {}) };
  if (ecosystem === 'pypi' && path) {
    const where = pythonPlacement(path);
    if (!where) return {};
    return {
      location: where.sitePackages, ...(where.vendoredIn ? { vendoredIn: where.vendoredIn } : {}),
      ...(isSystemDistPackages(where.sitePackages) ? { distroOwned: true } : {}),
    };
  }
  return {};
}

/** "1.26.17, 2.0.6" → ['1.26.17', '2.0.6']. */
export function splitFixedVersions(value: string | undefined): string[] {
  return (value ?? '').split(',').map((v) => v.trim()).filter(Boolean);
}

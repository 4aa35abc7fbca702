import type { InstalledPackage } from './inventory/types.js';

export type FindingSource = 'osv' | 'trivy' | 'harbor' | 'repository';
export type Severity = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | 'UNKNOWN';

/** One vulnerability (or available update) of one installed package. */
export interface Finding {
  readonly package: InstalledPackage;
  /** CVE-…, GHSA-…, DSA-…, GO-…; 'update' for a plain newer version in the image's repositories. */
  readonly id: string;
  readonly aliases: readonly string[];
  /** Versions that fix it, lowest first; several when the advisory names one per release line. */
  readonly fixedVersions: readonly string[];
  readonly severity: Severity;
  readonly source: FindingSource;
  readonly summary?: string;
}

export function normaliseSeverity(value: string | undefined): Severity {
  const v = (value ?? '').toUpperCase();
  if (v === 'CRITICAL' || v === 'HIGH' || v === 'MEDIUM' || v === 'LOW') return v;
  if (v === 'MODERATE') return 'MEDIUM';
  if (v === 'IMPORTANT') return 'HIGH';
  return 'UNKNOWN';
}

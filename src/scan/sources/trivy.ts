import { z } from 'zod';
import { PatchdError } from '../../errors.js';

export class ReportError extends PatchdError {}

const VulnerabilitySchema = z.object({
  VulnerabilityID: z.string(),
  PkgName: z.string(),
  InstalledVersion: z.string().optional(),
  FixedVersion: z.string().optional(),
  Severity: z.string().optional(),
}).loose();

const TrivyReportSchema = z.object({
  SchemaVersion: z.number().optional(),
  ArtifactName: z.string().optional(),
  Metadata: z.object({ OS: z.object({ Family: z.string(), Name: z.string().optional() }).loose().optional() }).loose().optional(),
  Results: z.array(z.object({
    Target: z.string().optional(),
    Class: z.string().optional(),
    Type: z.string().optional(),
    Vulnerabilities: z.array(VulnerabilitySchema).nullish(),
  }).loose()).default([]),
}).loose();

export interface OsPackageFix {
  readonly name: string;
  /** Highest fixed version any listed vulnerability needs (comma-separated lists are read as alternatives; the first is taken). */
  readonly fixedVersion: string;
  readonly vulnerabilities: readonly string[];
}

/**
 * The OS packages a Trivy JSON report lists with a FixedVersion, one entry
 * per package (Copa's report-driven mode).
 */
export function osFixesFromTrivyReport(json: unknown, compare: (a: string, b: string) => number): OsPackageFix[] {
  const parsed = TrivyReportSchema.safeParse(json);
  if (!parsed.success) throw new ReportError('REPORT_INVALID', `not a Trivy JSON report: ${z.prettifyError(parsed.error)}`);
  const byName = new Map<string, { fixedVersion: string; vulnerabilities: string[] }>();
  for (const result of parsed.data.Results) {
    if (result.Class !== 'os-pkgs') continue;
    for (const vuln of result.Vulnerabilities ?? []) {
      const fixed = vuln.FixedVersion?.split(',')[0]?.trim();
      if (!fixed) continue;
      const entry = byName.get(vuln.PkgName);
      if (!entry) byName.set(vuln.PkgName, { fixedVersion: fixed, vulnerabilities: [vuln.VulnerabilityID] });
      else {
        if (compare(fixed, entry.fixedVersion) > 0) entry.fixedVersion = fixed;
        if (!entry.vulnerabilities.includes(vuln.VulnerabilityID)) entry.vulnerabilities.push(vuln.VulnerabilityID);
      }
    }
  }
  return [...byName].map(([name, v]) => ({ name, ...v })).sort((a, b) => a.name.localeCompare(b.name));
}

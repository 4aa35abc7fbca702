import { z } from 'zod';
import { codedError, type ErrorCodes } from '../../lib/errors.js';
import type { Inventory } from '../inventory/types.js';
import type { Finding } from '../types.js';
import type { Ecosystem } from '../../versions/index.js';
import { findingsFromRows, splitFixedVersions, type ReportRow } from './report-findings.js';

/** Vulnerability reports (Trivy JSON, Harbor's) read from a file, a URL or Harbor's API. */
export const reportCodes = {
  /** The file or URL cannot be read at all. */
  REPORT_UNREADABLE: 'input',
  REPORT_INVALID: 'input',
  /** Harbor's API did not give the report (yet). */
  REPORT_UNAVAILABLE: 'unavailable',
} as const satisfies ErrorCodes;
export type ReportCode = keyof typeof reportCodes;

export class ReportError extends codedError(reportCodes) {}

const VulnerabilitySchema = z.object({
  VulnerabilityID: z.string(),
  PkgName: z.string(),
  PkgPath: z.string().optional(),
  InstalledVersion: z.string().optional(),
  FixedVersion: z.string().optional(),
  Severity: z.string().optional(),
  Title: z.string().optional(),
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

/** Trivy's result types (pkg/fanal/types) by ecosystem. */
const ecosystemByType: Record<string, Ecosystem> = {
  debian: 'debian', ubuntu: 'debian',
  alpine: 'alpine', wolfi: 'alpine', chainguard: 'alpine',
  redhat: 'rpm', centos: 'rpm', rocky: 'rpm', alma: 'rpm', amazon: 'rpm', oracle: 'rpm', fedora: 'rpm', photon: 'rpm',
  'cbl-mariner': 'rpm', azurelinux: 'rpm', suse: 'rpm', 'opensuse.leap': 'rpm', 'opensuse.tumbleweed': 'rpm', 'sles': 'rpm',
  'python-pkg': 'pypi', pip: 'pypi', pipenv: 'pypi', poetry: 'pypi', uv: 'pypi', conda: 'pypi',
  'node-pkg': 'npm', npm: 'npm', yarn: 'npm', pnpm: 'npm', bun: 'npm',
  gobinary: 'go', gomod: 'go',
  'dotnet-core': 'nuget', nuget: 'nuget', 'dotnet-deps': 'nuget', 'packages-props': 'nuget',
};

/** Findings from a Trivy JSON report (`trivy image -f json`), tied to the inventory when there is one. */
export function findingsFromTrivyReport(json: unknown, inventory?: Inventory): Finding[] {
  const parsed = TrivyReportSchema.safeParse(json);
  if (!parsed.success) throw new ReportError('REPORT_INVALID', `not a Trivy JSON report: ${z.prettifyError(parsed.error)}`);
  const rows: ReportRow[] = [];
  for (const result of parsed.data.Results) {
    const ecosystem = ecosystemByType[result.Type ?? ''] ?? (result.Class === 'os-pkgs' ? ecosystemFromOs(parsed.data.Metadata?.OS?.Family) : undefined);
    if (!ecosystem) continue;
    for (const v of result.Vulnerabilities ?? []) {
      rows.push({
        id: v.VulnerabilityID, name: v.PkgName, fixed: splitFixedVersions(v.FixedVersion), ecosystem,
        ...(v.InstalledVersion ? { installed: v.InstalledVersion } : {}),
        ...(v.Severity ? { severity: v.Severity } : {}),
        ...(v.Title ? { summary: v.Title } : {}),
        ...(v.PkgPath ? { path: v.PkgPath } : {}),
      });
    }
  }
  return findingsFromRows(rows, inventory, 'trivy');
}

function ecosystemFromOs(family: string | undefined): Ecosystem | undefined {
  return family ? ecosystemByType[family] : undefined;
}

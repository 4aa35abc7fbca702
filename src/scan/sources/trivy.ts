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

/**
 * Result types for files an image was built from, not packages installed in
 * it (requirement files and lockfiles; Trivy's pkg/fanal/types LangType):
 * their rows name what a manifest asks for, which patchd cannot install.
 */
const sourceManifestTypes = new Set(['pip', 'pipenv', 'poetry', 'uv', 'npm', 'yarn', 'pnpm', 'bun', 'packages-props']);
/** Result types whose Target is the file the packages are in (a binary, a go.mod, a deps.json, a manifest), not a label such as "Python". */
const targetIsFile = new Set([...sourceManifestTypes, 'gobinary', 'gomod', 'dotnet-core']);

/** Findings from a Trivy JSON report (`trivy image -f json`), tied to the inventory when there is one. */
export function findingsFromTrivyReport(json: unknown, inventory?: Inventory): Finding[] {
  const parsed = TrivyReportSchema.safeParse(json);
  if (!parsed.success) throw new ReportError('REPORT_INVALID', `not a Trivy JSON report: ${z.prettifyError(parsed.error)}`);
  const rows: ReportRow[] = [];
  for (const result of parsed.data.Results) {
    const type = result.Type ?? '';
    const ecosystem = ecosystemByType[type] ?? (result.Class === 'os-pkgs' ? ecosystemFromOs(parsed.data.Metadata?.OS?.Family) : undefined);
    if (!ecosystem) continue;
    const describes = sourceManifestTypes.has(type) ? 'source-manifest' : type === 'gomod' ? 'go.mod' : type === 'gobinary' ? 'go-binary' : undefined;
    const file = targetIsFile.has(type) ? result.Target : undefined;
    // Trivy writes Go fixed versions as the advisories do, without the `v` module versions have ("0.3.7", stdlib "1.24.6").
    const version = (v: string) => (ecosystem === 'go' && /^\d/.test(v) ? `v${v}` : v);
    for (const v of result.Vulnerabilities ?? []) {
      const path = v.PkgPath || file;
      rows.push({
        id: v.VulnerabilityID, name: v.PkgName, fixed: splitFixedVersions(v.FixedVersion).map(version), ecosystem,
        ...(v.InstalledVersion ? { installed: version(v.InstalledVersion) } : {}),
        ...(v.Severity ? { severity: v.Severity } : {}),
        ...(v.Title ? { summary: v.Title } : {}),
        ...(path ? { path } : {}),
        ...(describes ? { describes } : {}),
        ...(describes === 'source-manifest' ? { manifestType: type } : {}),
      });
    }
  }
  return findingsFromRows(rows, inventory, 'trivy');
}

function ecosystemFromOs(family: string | undefined): Ecosystem | undefined {
  return family ? ecosystemByType[family] : undefined;
}

import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { readAllBytes } from '../../lib/streams.js';
import type { Inventory } from '../inventory/types.js';
import type { Finding } from '../types.js';
import { findingsFromRows, splitFixedVersions } from './report-findings.js';
import { ReportError } from './trivy.js';

/** The report types Harbor's scanner adapters produce (pluggable scanner spec v1.0/1.1). */
export const harborReportMimeTypes = [
  'application/vnd.security.vulnerability.report; version=1.1',
  'application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0',
] as const;

const HarborVulnerabilitySchema = z.looseObject({
  id: z.string(),
  package: z.string(),
  version: z.string().optional(),
  fix_version: z.string().optional(),
  severity: z.string().optional(),
  description: z.string().optional(),
});
const HarborReportSchema = z.looseObject({
  generated_at: z.string().optional(),
  scanner: z.looseObject({ name: z.string().optional(), version: z.string().optional() }).optional(),
  vulnerabilities: z.array(HarborVulnerabilitySchema).nullish(),
});

/**
 * Harbor's vulnerability report (GET /api/v2.0/projects/{project}/repositories/
 * {repository}/artifacts/{digest}/additions/vulnerabilities): an object keyed
 * by report MIME type. Rows carry no ecosystem, so they are tied to the
 * inventory by package name and installed version.
 */
export function findingsFromHarborReport(json: unknown, inventory?: Inventory): Finding[] {
  if (!json || typeof json !== 'object') throw new ReportError('REPORT_INVALID', 'Harbor vulnerability report is not a JSON object');
  const entries = Object.entries(json as Record<string, unknown>);
  const report = entries.find(([type]) => harborReportMimeTypes.some((t) => normaliseMime(t) === normaliseMime(type)))?.[1];
  if (report === undefined) {
    throw new ReportError('REPORT_INVALID', `Harbor report has none of the known report types (got ${entries.map(([t]) => JSON.stringify(t)).join(', ') || 'nothing'})`);
  }
  const parsed = HarborReportSchema.safeParse(report);
  if (!parsed.success) throw new ReportError('REPORT_INVALID', `Harbor vulnerability report: ${z.prettifyError(parsed.error)}`);
  const rows = (parsed.data.vulnerabilities ?? []).map((v) => ({
    id: v.id, name: v.package, fixed: splitFixedVersions(v.fix_version),
    ...(v.version ? { installed: v.version } : {}),
    ...(v.severity ? { severity: v.severity } : {}),
    ...(v.description ? { summary: v.description.split('\n')[0]!.slice(0, 200) } : {}),
  }));
  return findingsFromRows(rows, inventory, 'harbor');
}

function normaliseMime(type: string): string {
  return type.replace(/\s+/g, '').toLowerCase();
}

/** Fetches the report for one artifact with the registry's credentials (Basic, as Harbor's API takes robot accounts). */
export async function fetchHarborReport(options: {
  baseUrl: string;
  repository: string;
  digest: string;
  credentials?: { username: string; password: string };
  dispatcher?: Dispatcher;
}): Promise<unknown> {
  const slash = options.repository.indexOf('/');
  if (slash <= 0) throw new ReportError('REPORT_UNREADABLE', `Harbor repository ${options.repository} has no project part`);
  const project = options.repository.slice(0, slash);
  // Harbor wants repository names with '/' encoded twice.
  const repo = encodeURIComponent(encodeURIComponent(options.repository.slice(slash + 1)));
  const url = `${options.baseUrl.replace(/\/$/, '')}/api/v2.0/projects/${encodeURIComponent(project)}/repositories/${repo}/artifacts/${options.digest}/additions/vulnerabilities`;
  const headers: Record<string, string> = { accept: 'application/json', 'x-accept-vulnerabilities': harborReportMimeTypes.join(', ') };
  if (options.credentials) headers['authorization'] = `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`;
  let response: Dispatcher.ResponseData;
  let body: Buffer;
  try {
    response = await request(url, { method: 'GET', headers, ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}), headersTimeout: 30_000, bodyTimeout: 60_000 });
    body = await readAllBytes(response.body);
  } catch (error) {
    throw new ReportError('REPORT_UNAVAILABLE', `Harbor report ${url}: ${(error as Error).message}`, { cause: error });
  }
  if (response.statusCode !== 200) {
    const denied = response.statusCode === 401 || response.statusCode === 403;
    throw new ReportError('REPORT_UNAVAILABLE', `Harbor report ${url}: HTTP ${response.statusCode}${denied ? ' (check the registry credentials)' : ''}`, denied ? { kind: 'upstream' } : {});
  }
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new ReportError('REPORT_INVALID', `Harbor report ${url} is not JSON`);
  }
}

import { readFile } from 'node:fs/promises';
import { request, type Dispatcher } from 'undici';
import { UsageError } from '../lib/errors.js';
import { readAllBytes } from '../lib/streams.js';
import type { AdvisorySources } from '../scan/scan.js';
import { OsvDatabase } from '../scan/sources/osv.js';
import { ReportError } from '../scan/sources/trivy.js';

const maxReportBytes = 256 * 2 ** 20;

/** `-r`: a Trivy JSON report or a Harbor vulnerability report, from a file or an http(s) URL; the kind is told by its shape. */
export async function readReport(location: string, dispatcher?: Dispatcher): Promise<NonNullable<AdvisorySources['report']>> {
  let text: string;
  if (/^https?:\/\//.test(location)) {
    let response;
    try {
      response = await request(location, { method: 'GET', headers: { accept: 'application/json' }, ...(dispatcher ? { dispatcher } : {}), headersTimeout: 30_000, bodyTimeout: 120_000 });
      if (response.statusCode !== 200) {
        await response.body.dump();
        throw new ReportError('REPORT_UNREADABLE', `cannot read report ${location}: HTTP ${response.statusCode}`, response.statusCode === 429 || response.statusCode >= 500 ? { kind: 'unavailable' } : {});
      }
      if (Number(response.headers['content-length'] ?? 0) > maxReportBytes) {
        await response.body.dump();
        throw new ReportError('REPORT_UNREADABLE', `cannot read report ${location}: larger than 256 MiB`);
      }
      text = (await readAllBytes(response.body)).toString('utf8');
    } catch (error) {
      if (error instanceof ReportError) throw error;
      throw new ReportError('REPORT_UNREADABLE', `cannot read report ${location}: ${(error as Error).message}`, { cause: error, kind: 'unavailable' });
    }
  } else {
    try {
      text = await readFile(location, 'utf8');
    } catch (error) {
      throw new ReportError('REPORT_UNREADABLE', `cannot read report ${location}: ${(error as Error).message}`, { cause: error });
    }
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch (error) {
    throw new ReportError('REPORT_UNREADABLE', `report ${location} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const keys = json && typeof json === 'object' ? Object.keys(json) : [];
  if (keys.some((k) => /vulnerability\.report|vuln\.report/.test(k))) return { kind: 'harbor', json };
  return { kind: 'trivy', json };
}

/** OSV data from `--advisories` paths (directories of records or all.zip files). */
export async function loadAdvisories(paths: readonly string[]): Promise<OsvDatabase | undefined> {
  return paths.length > 0 ? OsvDatabase.load(paths) : undefined;
}

export type PkgTypeList = { os: boolean; library: boolean };

/** Copa's --pkg-types: os, library or os,library. */
export function parsePkgTypes(value: string): PkgTypeList {
  const parts = value.split(',').map((p) => p.trim()).filter(Boolean);
  const unknown = parts.filter((p) => p !== 'os' && p !== 'library');
  if (parts.length === 0 || unknown.length > 0) throw new UsageError(`--pkg-types takes os, library or os,library (got ${JSON.stringify(value)})`);
  return { os: parts.includes('os'), library: parts.includes('library') };
}

export function parsePatchLevel(value: string): 'patch' | 'minor' | 'major' {
  if (value === 'patch' || value === 'minor' || value === 'major') return value;
  throw new UsageError(`--library-patch-level takes patch, minor or major (got ${JSON.stringify(value)})`);
}

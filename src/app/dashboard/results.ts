import type { Job } from '../../queue/types.js';

// What a finished job's `result` holds (the worker's summary of a PatchOutcome), as far as the dashboard reads it.
// Every field is optional: results written by older versions lack the newer ones.

export interface ResultFinding {
  readonly id: string;
  readonly aliases?: readonly string[];
  readonly severity?: string;
  readonly package: string;
  readonly version: string;
  readonly fixed?: readonly string[];
  readonly source?: string;
}

export interface ResultPlatform {
  readonly platform: string;
  readonly findings?: readonly ResultFinding[];
  readonly packages?: readonly { readonly name: string; readonly from: string; readonly to: string; readonly reasons?: readonly string[] }[];
  readonly libraries?: readonly { readonly ecosystem: string; readonly name: string; readonly from: string; readonly to: string; readonly path?: string; readonly reasons?: readonly string[] }[];
  readonly unavailable?: readonly { readonly name: string; readonly installed?: string; readonly fixedVersion?: string; readonly reason: string }[];
  readonly notPatched?: readonly { readonly name: string; readonly version: string; readonly reason: string; readonly findings?: readonly string[] }[];
  readonly layer?: { readonly digest: string; readonly size: number };
  readonly executor?: string;
  readonly manifestDigest?: string;
  readonly skipped?: string;
}

export interface JobResult {
  readonly status?: string;
  readonly target?: string;
  readonly digest?: string;
  readonly sourceDigest?: string;
  readonly tags?: readonly string[];
  readonly reason?: string;
  readonly notes?: readonly string[];
  readonly evidence?: { readonly vex?: { readonly digest: string; readonly statements: number }; readonly sbom?: readonly { readonly platform: string; readonly digest: string; readonly components: number }[]; readonly error?: string };
  readonly signature?: { readonly tag: string; readonly manifestDigest: string };
  readonly stageMs?: Readonly<Record<string, number>>;
  readonly platforms?: readonly ResultPlatform[];
  readonly reevaluation?: { readonly reason?: string; readonly superseded?: boolean };
}

export function resultOf(job: Job): JobResult {
  return typeof job.result === 'object' && job.result !== null ? job.result as JobResult : {};
}

/** A vulnerability id (CVE-…, GHSA-…, DEBIAN-CVE-…), not a plain reason such as 'newer version in bookworm-security'. */
const vulnerabilityId = /^[A-Z][A-Za-z0-9]*(-[A-Za-z0-9._:]+)+$/;

/**
 * The vulnerabilities a patch fixed: the ids its packages and libraries were
 * planned for, each with the CVE it is known as (from the finding's aliases)
 * and the package it was fixed in.
 */
export function fixedVulnerabilities(result: JobResult): { id: string; cve?: string; package: string; severity?: string }[] {
  const out = new Map<string, { id: string; cve?: string; package: string; severity?: string }>();
  for (const platform of result.platforms ?? []) {
    const findings = new Map((platform.findings ?? []).map((f) => [f.id, f]));
    for (const item of [...(platform.packages ?? []), ...(platform.libraries ?? [])]) {
      for (const id of item.reasons ?? []) {
        if (!vulnerabilityId.test(id) || out.has(id)) continue;
        const finding = findings.get(id);
        const cve = id.startsWith('CVE-') ? id : finding?.aliases?.find((a) => a.startsWith('CVE-'));
        out.set(id, { id, package: item.name, ...(cve ? { cve } : {}), ...(finding?.severity ? { severity: finding.severity } : {}) });
      }
    }
  }
  return [...out.values()];
}

/** How a vulnerability is counted across images: its CVE when it has one, else its own id. */
export const vulnerabilityKey = (v: { id: string; cve?: string }): string => v.cve ?? v.id;

/** Where to read an advisory: the source that publishes ids of that form. */
export function advisoryUrl(id: string): string {
  const at = encodeURIComponent(id);
  if (id.startsWith('CVE-')) return `https://nvd.nist.gov/vuln/detail/${at}`;
  if (id.startsWith('GHSA-')) return `https://github.com/advisories/${at}`;
  if (/^(DSA|DLA)-/.test(id)) return `https://security-tracker.debian.org/tracker/${at}`;
  return `https://osv.dev/vulnerability/${at}`;
}

/** Findings of the job's scan that nothing can fix yet: no fixed version known, or the fix is not installable. */
export function stillExposed(result: JobResult): { id: string; package: string; version: string; why: string }[] {
  const out: { id: string; package: string; version: string; why: string }[] = [];
  for (const platform of result.platforms ?? []) {
    for (const f of platform.findings ?? []) {
      if ((f.fixed ?? []).length === 0 && f.id !== 'update') out.push({ id: f.id, package: f.package, version: f.version, why: 'no fixed version published yet' });
    }
    for (const u of platform.unavailable ?? []) out.push({ id: '', package: u.name, version: u.installed ?? '', why: u.reason });
    for (const s of platform.notPatched ?? []) for (const id of s.findings ?? ['']) out.push({ id, package: s.name, version: s.version, why: s.reason });
  }
  const seen = new Set<string>();
  return out.filter((e) => { const key = `${e.id}|${e.package}|${e.version}`; if (seen.has(key)) return false; seen.add(key); return true; });
}

/** registry/repository[:tag] for display. */
export const imageName = (j: Pick<Job, 'registry' | 'repository' | 'tag'>): string => `${j.registry}/${j.repository}${j.tag ? `:${j.tag}` : ''}`;

/** The dashboard's page for one image (query parameters, so any repository name round-trips). */
export function imageHref(j: Pick<Job, 'registry' | 'repository' | 'tag'>): string {
  const query = new URLSearchParams({ registry: j.registry, repository: j.repository, ...(j.tag ? { tag: j.tag } : {}) });
  return `/dashboard/image?${query.toString()}`;
}

export const shortDigest = (digest: string | undefined): string => (digest ? digest.replace(/^sha256:/, '').slice(0, 12) : '');

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

import type { Finding } from '../scan/types.js';
import { compareVersions } from '../versions/index.js';
import type { UpgradeRequest } from './deb-upgrades.js';

/**
 * What apt should upgrade, from OS findings: each vulnerable binary package
 * to at least the highest fixed version its findings need. Findings with no
 * fixed version have nothing to install and are left out (Trivy's
 * --ignore-unfixed). `all` is Copa's no-report mode: every available update.
 */
export function debUpgradeRequest(findings: readonly Finding[] | 'all'): UpgradeRequest {
  if (findings === 'all') return { kind: 'all' };
  const packages = new Map<string, { fixedVersion?: string; reasons: string[] }>();
  for (const f of findings) {
    if (f.package.class !== 'os' || f.package.ecosystem !== 'debian') continue;
    // Comma-separated alternatives are release lines; the lowest above us is the one this suite gets.
    const fixed = f.fixedVersions[0];
    if (!fixed) continue;
    const entry = packages.get(f.package.name);
    if (!entry) { packages.set(f.package.name, { fixedVersion: fixed, reasons: [f.id] }); continue; }
    if (!entry.fixedVersion || compareVersions('debian', fixed, entry.fixedVersion) > 0) entry.fixedVersion = fixed;
    if (!entry.reasons.includes(f.id)) entry.reasons.push(f.id);
  }
  return { kind: 'packages', packages };
}

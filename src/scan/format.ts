import { cycloneDxBom, type BomSubject } from './cyclonedx.js';
import type { Inventory } from './inventory/types.js';
import type { Finding } from './types.js';

export interface ScanResult {
  readonly image: string;
  readonly digest: string;
  readonly platform: string;
  readonly inventory: Inventory;
  readonly findings: readonly Finding[];
}

/** CycloneDX 1.6 JSON (see cyclonedx.ts): the packages of every platform scanned. */
export function formatCycloneDx(results: readonly ScanResult[], toolVersion: string, subject: BomSubject): string {
  return `${JSON.stringify(cycloneDxBom(subject, results, { toolVersion }), null, 2)}\n`;
}

const severityOrder = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'];

/** Schema 2: `packages` is the full package list (schema 1 had its count). */
export function formatJson(results: readonly ScanResult[]): string {
  return `${JSON.stringify({
    schemaVersion: 2,
    results: results.map((r) => ({
      image: r.image, digest: r.digest, platform: r.platform, os: r.inventory.os ?? null,
      packages: r.inventory.packages.map((p) => ({
        name: p.name, version: p.version, ecosystem: p.ecosystem, class: p.class, purl: p.purl, path: p.path,
        ...(p.architecture ? { architecture: p.architecture } : {}), ...(p.location ? { location: p.location } : {}),
        ...(p.sourceName ? { sourceName: p.sourceName } : {}), ...(p.sourceVersion ? { sourceVersion: p.sourceVersion } : {}),
      })),
      warnings: r.inventory.warnings,
      findings: r.findings.map((f) => ({
        id: f.id, aliases: f.aliases, severity: f.severity, source: f.source, summary: f.summary,
        package: { name: f.package.name, ecosystem: f.package.ecosystem, class: f.package.class, version: f.package.version, purl: f.package.purl, path: f.package.path },
        fixedVersions: f.fixedVersions,
      })),
    })),
  }, null, 2)}\n`;
}

export function formatTable(results: readonly ScanResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const os = r.inventory.os?.prettyName ?? r.inventory.os?.id ?? 'unknown OS';
    lines.push(`${r.image}@${r.digest} (${r.platform}, ${os}): ${r.inventory.packages.length} packages, ${r.findings.length} findings`);
    const rows = [...r.findings]
      .sort((a, b) => severityOrder.indexOf(a.severity) - severityOrder.indexOf(b.severity) || a.package.name.localeCompare(b.package.name) || a.id.localeCompare(b.id))
      .map((f) => [f.package.name, f.package.version, f.id, f.severity, f.fixedVersions.join(', ') || '-', f.package.class === 'os' ? f.package.ecosystem : `${f.package.ecosystem} ${f.package.path}`]);
    if (rows.length > 0) lines.push(...table([['PACKAGE', 'INSTALLED', 'VULNERABILITY', 'SEVERITY', 'FIXED IN', 'WHERE'], ...rows]));
    for (const w of r.inventory.warnings) lines.push(`warning: ${w}`);
    lines.push('');
  }
  return `${lines.join('\n')}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

const sarifLevel: Record<string, string> = { CRITICAL: 'error', HIGH: 'error', MEDIUM: 'warning', LOW: 'note', UNKNOWN: 'note' };

/** SARIF 2.1.0 (what code-scanning dashboards ingest): one rule per vulnerability, one result per package hit. */
export function formatSarif(results: readonly ScanResult[], toolVersion: string): string {
  const rules = new Map<string, { id: string; shortDescription: { text: string }; properties: { severity: string } }>();
  const sarifResults = results.flatMap((r) => r.findings.map((f) => {
    if (!rules.has(f.id)) rules.set(f.id, { id: f.id, shortDescription: { text: f.summary ?? f.id }, properties: { severity: f.severity } });
    return {
      ruleId: f.id,
      level: sarifLevel[f.severity] ?? 'note',
      message: { text: `${f.package.name} ${f.package.version} is affected by ${f.id}${f.fixedVersions.length ? `; fixed in ${f.fixedVersions.join(', ')}` : ''}` },
      locations: [{ physicalLocation: { artifactLocation: { uri: f.package.path || r.image } } }],
      properties: { purl: f.package.purl, image: `${r.image}@${r.digest}`, platform: r.platform, source: f.source },
    };
  }));
  return `${JSON.stringify({
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{ tool: { driver: { name: 'patchd', version: toolVersion, rules: [...rules.values()] } }, results: sarifResults }],
  }, null, 2)}\n`;
}

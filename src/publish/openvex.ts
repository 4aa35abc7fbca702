import { createHash } from 'node:crypto';
import { field, type Paragraph } from '../distro/deb/control.js';
import type { Reference } from '../oci/reference.js';
import type { PatchPlan } from '../plan/types.js';
import { purl, purlFor } from '../scan/inventory/purl.js';
import type { InstalledPackage, OsInfo } from '../scan/inventory/types.js';
import type { Finding } from '../scan/types.js';
import { compareVersions } from '../versions/index.js';

export const openVexContext = 'https://openvex.dev/ns/v0.2.0';

/**
 * What a VEX document is made from: the parts of a PatchOutcome (pipeline)
 * it reads, so `openVexDocument(outcome)` takes one as it is.
 */
export interface VexOutcome {
  /** The patched reference (`registry/repo:tag`). */
  readonly target?: string;
  /** The pushed result's digest (a manifest, or the index of a multi-platform image). */
  readonly digest?: string;
  readonly platforms: readonly VexPlatform[];
}

export interface VexPlatform {
  /** `linux/amd64`, or `single` for an image that is not an index. */
  readonly platform: string;
  readonly findings?: readonly Finding[];
  readonly plan?: PatchPlan;
  readonly failed: readonly { readonly name: string }[];
  /** Present only when the patch layer was built and verified (the pipeline throws VERIFY_FAILED otherwise). */
  readonly layer?: unknown;
  /** The pushed patched manifest of this platform. */
  readonly manifestDigest?: string;
  readonly inventory?: { readonly os?: OsInfo };
}

/** One vulnerability of one package that the patch verifiably fixed. */
export interface VerifiedFix {
  readonly id: string;
  readonly aliases: readonly string[];
  readonly package: InstalledPackage;
  /** The package's version in the patched image. */
  readonly version: string;
  /** Its purl, at that version. */
  readonly purl: string;
}

export interface OpenVexDocument {
  readonly '@context': typeof openVexContext;
  readonly '@id': string;
  readonly author: string;
  readonly role?: string;
  readonly timestamp: string;
  readonly version: number;
  readonly tooling?: string;
  readonly statements: readonly OpenVexStatement[];
}

export interface OpenVexStatement {
  readonly vulnerability: { readonly name: string; readonly aliases?: readonly string[] };
  readonly timestamp: string;
  readonly products: readonly { readonly '@id': string; readonly subcomponents: readonly { readonly '@id': string }[] }[];
  readonly status: 'fixed';
  readonly status_notes?: string;
}

/**
 * The findings of one platform that its patch fixed: the package was
 * upgraded by the applied (not failed) plan, the platform's layer was built
 * and verified (its versions read back from the layer), and the version now
 * in the image is at or past one of the advisory's fixed versions. Plain
 * "newer version available" findings are no vulnerabilities and never count;
 * nothing here is guessed from a finding's absence.
 */
export function verifiedFixes(platform: VexPlatform): VerifiedFix[] {
  if (!platform.layer || !platform.plan || !platform.findings) return [];
  const failed = new Set(platform.failed.map((f) => f.name));
  const os = platform.inventory?.os;
  const fixes: VerifiedFix[] = [];
  for (const finding of platform.findings) {
    if (finding.source === 'repository' || finding.fixedVersions.length === 0) continue;
    const upgrade = upgradeOf(finding.package, platform.plan, failed);
    if (!upgrade) continue;
    const { compared, installed } = upgrade;
    const ecosystem = finding.package.ecosystem;
    const fixed = finding.fixedVersions.some((f) => { try { return compareVersions(ecosystem, compared, f) >= 0; } catch { return false; } });
    if (!fixed) continue;
    fixes.push({ id: finding.id, aliases: finding.aliases, package: finding.package, version: installed, purl: purlFor({ ...finding.package, version: installed }, os) });
  }
  return fixes;
}

/**
 * How the patch moved this package: the version installed, and the one to
 * hold against the advisory (Debian advisories name source versions).
 */
function upgradeOf(pkg: InstalledPackage, plan: PatchPlan, failed: ReadonlySet<string>): { installed: string; compared: string } | undefined {
  if (pkg.ecosystem === 'debian') {
    const p = plan.packages.find((x) => x.name === pkg.name && (x.architecture === pkg.architecture || !pkg.architecture) && !failed.has(x.name));
    if (!p) return undefined;
    const usesSource = pkg.class === 'os' && pkg.sourceVersion !== undefined && pkg.sourceName !== undefined && pkg.sourceName !== pkg.name;
    return { installed: p.to, compared: usesSource ? debSourceVersion(p.candidate.paragraph, p.to) : p.to };
  }
  if (pkg.ecosystem === 'rpm') {
    const u = plan.upgraded?.find((x) => x.name === pkg.name);
    return u ? { installed: u.to, compared: u.to } : undefined;
  }
  const l = plan.libraries?.find((x) => x.ecosystem === pkg.ecosystem && x.name === pkg.name && x.path === pkg.path && x.location === pkg.location
    && !failed.has(`${x.name} (${x.ecosystem}, ${x.location ?? x.path})`));
  return l ? { installed: l.to, compared: l.to } : undefined;
}

/** `Source: openssl (3.0.22-1)` names the source version when it differs from the binary's; otherwise they are the same. */
function debSourceVersion(paragraph: Paragraph, binaryVersion: string): string {
  return /\(([^)]+)\)/.exec(field(paragraph, 'Source') ?? '')?.[1]?.trim() ?? binaryVersion;
}

/** `pkg:oci/<name>@<digest>?repository_url=<registry>/<repository>` (purl-spec's oci type), with `arch` for a platform manifest. */
export function ociPurl(repo: Pick<Reference, 'registry' | 'repository'>, digest: string, platform?: string): string {
  const name = repo.repository.split('/').pop()!;
  const [, arch] = platform && platform !== 'single' ? platform.split('/') : [];
  return purl('oci', undefined, name, digest, { repository_url: `${repo.registry}/${repo.repository}`, arch });
}

/**
 * An OpenVEX 0.2.0 document with one `fixed` statement per vulnerability the
 * patch verifiably fixed (see verifiedFixes); no other status is ever
 * claimed. Each product is a patched platform manifest,
 * `pkg:oci/<name>@<manifest digest>`, with the fixed packages (purls at
 * their patched versions) as subcomponents: packages differ per platform,
 * so a multi-platform image's statements name its platform manifests, not
 * the index (whose digest is in the `@id` input). Nothing fixed, no
 * statements.
 */
export function openVexDocument(outcome: VexOutcome, options: { readonly repository: Pick<Reference, 'registry' | 'repository'>; readonly now?: Date; readonly tooling?: string }): OpenVexDocument {
  const timestamp = (options.now ?? new Date()).toISOString();
  const byVulnerability = new Map<string, { aliases: Set<string>; products: Map<string, Set<string>> }>();
  for (const platform of outcome.platforms) {
    if (!platform.manifestDigest) continue;
    const product = ociPurl(options.repository, platform.manifestDigest, platform.platform);
    for (const fix of verifiedFixes(platform)) {
      const entry = byVulnerability.get(fix.id) ?? { aliases: new Set<string>(), products: new Map<string, Set<string>>() };
      byVulnerability.set(fix.id, entry);
      for (const a of fix.aliases) if (a !== fix.id) entry.aliases.add(a);
      const subcomponents = entry.products.get(product) ?? new Set<string>();
      entry.products.set(product, subcomponents);
      subcomponents.add(fix.purl);
    }
  }
  const statements: OpenVexStatement[] = [...byVulnerability].sort(([a], [b]) => a.localeCompare(b)).map(([name, { aliases, products }]) => ({
    vulnerability: { name, ...(aliases.size > 0 ? { aliases: [...aliases].sort() } : {}) },
    timestamp,
    products: [...products].map(([id, subs]) => ({ '@id': id, subcomponents: [...subs].sort().map((s) => ({ '@id': s })) })),
    status: 'fixed' as const,
    status_notes: 'patched by patchd: the fixed version was installed in the patch layer and read back from it',
  }));
  // A name-based UUID of what the document is about and when, so one patch's document has one @id wherever it is written.
  const h = createHash('sha256').update(`${outcome.digest ?? ''}\n${timestamp}`).digest('hex');
  const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return {
    '@context': openVexContext,
    '@id': `urn:uuid:${uuid}`,
    author: 'patchd',
    role: 'automated patcher',
    timestamp,
    version: 1,
    ...(options.tooling ? { tooling: options.tooling } : {}),
    statements,
  };
}

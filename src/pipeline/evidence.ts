import { resolveImage } from '../image/resolve.js';
import { MediaType } from '../oci/media-types.js';
import { formatReference, parseReference, withDigest, type Reference } from '../oci/reference.js';
import { openVexDocument } from '../publish/openvex.js';
import { attachReferrer, type AttachedArtifact } from '../publish/referrers.js';
import { cycloneDxBom } from '../scan/cyclonedx.js';
import { ociPurl } from '../publish/openvex.js';
import { scanLayers } from '../scan/scan.js';
import { scanCacheFor } from '../scan/scan-cache.js';
import type { PatchDependencies, PatchEvidence, PatchOptions, PatchOutcome } from './types.js';

/**
 * The evidence attached to a freshly pushed patch, as OCI 1.1 referrers
 * (found through the referrers API, or the `sha256-<hex>` tag where the
 * registry has none):
 * - an OpenVEX document on the pushed result (the index, for several
 *   platforms), one `fixed` statement per verified fix; none is attached when
 *   nothing named by an advisory was fixed (an upgrade without advisory data);
 * - a CycloneDX SBOM on each patched platform manifest, from a scan of that
 *   manifest as the registry now serves it.
 * The image is already pushed: a failure here is reported in the outcome
 * (and logged), not thrown, so the job does not push the image again.
 */
export async function publishEvidence(deps: PatchDependencies, options: PatchOptions, outcome: PatchOutcome): Promise<PatchEvidence | undefined> {
  if (outcome.status !== 'patched' || !outcome.digest || !outcome.target || options.evidence === false) return undefined;
  const { client, logger } = deps;
  const target = parseReference(outcome.target);
  const repo: Reference = { registry: target.registry, repository: target.repository };
  const now = deps.now?.() ?? new Date();
  const evidence: { -readonly [K in keyof PatchEvidence]: PatchEvidence[K] } = {};
  try {
    const pushed = await resolveImage(client, withDigest(repo, outcome.digest));
    const subject = { mediaType: pushed.top.mediaType, digest: pushed.top.digest, size: pushed.top.bytes.length };

    const vex = openVexDocument(outcome, { repository: repo, now, tooling: 'patchd' });
    if (vex.statements.length > 0) {
      const attached = await attachReferrer({ client, repo, subject, artifactType: MediaType.openVex, document: Buffer.from(`${JSON.stringify(vex, null, 2)}\n`), title: 'patchd.openvex.json', created: now });
      evidence.vex = { ...summary(attached), statements: vex.statements.length };
    } else {
      logger.info({ target: outcome.target }, 'no OpenVEX document: no fix of a vulnerability an advisory names');
    }

    // SBOMs of the platforms this run built (kept platforms of a re-patch already had theirs attached).
    const built = new Set(outcome.platforms.filter((p) => p.layer && p.manifestDigest).map((p) => p.manifestDigest!));
    const sboms: NonNullable<PatchEvidence['sbom']>[number][] = [];
    for (const platform of pushed.platforms) {
      if (!built.has(platform.ref.digest!)) continue;
      const { manifest, image } = await platform.load();
      const { inventory } = await scanLayers(image.layers, { tmpDir: deps.tmpDir, logger, cache: { store: scanCacheFor(deps.cacheDir, logger) } });
      const bom = cycloneDxBom({ name: formatReference(target), digest: manifest.digest, purl: ociPurl(repo, manifest.digest, platform.platform) }, [{ platform: platform.platform, digest: manifest.digest, inventory }], { now });
      const attached = await attachReferrer({
        client, repo, subject: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length },
        artifactType: MediaType.cycloneDxJson, document: Buffer.from(`${JSON.stringify(bom)}\n`), title: 'patchd.cdx.json', created: now,
      });
      sboms.push({ ...summary(attached), platform: platform.platform, subject: manifest.digest, components: inventory.packages.length });
    }
    if (sboms.length > 0) evidence.sbom = sboms;
  } catch (error) {
    evidence.error = (error as Error).message;
    logger.warn({ target: outcome.target, err: error }, 'the patched image was pushed, but its evidence could not be attached');
  }
  return evidence;
}

function summary(a: AttachedArtifact): { digest: string; via: AttachedArtifact['via'] } {
  return { digest: a.digest, via: a.via };
}

import { parseReference } from '../oci/reference.js';
import { attachCosignSignature } from '../publish/cosign.js';
import type { PatchDependencies, PatchOutcome } from './types.js';

/**
 * With a signer: cosign's signature on what was just pushed, the digest the
 * outcome reports (for several platforms, the index: `cosign verify` of the
 * index digest accepts it; its platform manifests are not signed one by one,
 * as `cosign sign` without --recursive does). A failure is thrown, not
 * reported: a run that was asked to sign must not look like a success.
 */
export async function signPublished(deps: PatchDependencies, outcome: PatchOutcome): Promise<PatchOutcome> {
  const { signer, client, logger } = deps;
  if (!signer || outcome.status !== 'patched' || !outcome.digest || !outcome.target) return outcome;
  const target = parseReference(outcome.target);
  try {
    const signed = await attachCosignSignature({ client, repo: { registry: target.registry, repository: target.repository }, digest: outcome.digest, signer, logger });
    return { ...outcome, signature: { tag: signed.tag, manifestDigest: signed.manifestDigest } };
  } catch (error) {
    logger.error({ target: outcome.target, digest: outcome.digest, err: error }, 'the patched image was pushed, but signing it failed');
    throw error;
  }
}

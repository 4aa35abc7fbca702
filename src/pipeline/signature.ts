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
  // Up to date: the patch already there is signed too when it is not yet (a retry after a failed signing,
  // or an image patched before signing was configured); signing what is already signed adds nothing.
  const signed = outcome.status === 'patched' && outcome.digest && outcome.target ? { target: outcome.target, digest: outcome.digest }
    : outcome.status === 'up-to-date' ? outcome.current : undefined;
  if (!signer || !signed) return outcome;
  const target = parseReference(signed.target);
  try {
    const signature = await attachCosignSignature({ client, repo: { registry: target.registry, repository: target.repository }, digest: signed.digest, signer, logger });
    return { ...outcome, signature: { tag: signature.tag, manifestDigest: signature.manifestDigest } };
  } catch (error) {
    logger.error({ target: signed.target, digest: signed.digest, err: error }, 'the patched image was pushed, but signing it failed');
    throw error;
  }
}

import { createHash, createPublicKey, verify } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from '../lib/log.js';
import type { RegistryClient } from '../oci/client.js';
import { MediaType } from '../oci/media-types.js';
import { formatReference, withTag, type Reference } from '../oci/reference.js';
import type { ManifestSigner } from './signing-key.js';

export { loadSigner, SigningKeyError, type ManifestSigner } from './signing-key.js';

/** cosign's names for its signature artifacts (sigstore/cosign pkg/oci/static, pkg/cosign). */
export const CosignMediaType = { simpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json' } as const;
export const cosignSignatureAnnotation = 'dev.cosignproject.cosign/signature';

interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
interface SignatureManifest { schemaVersion: 2; mediaType: string; config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> }
interface SignatureConfig { architecture: string; created: string; history: { created: string }[]; os: string; rootfs: { type: 'layers'; diff_ids: string[] }; config: Record<string, never> }

/** The tag cosign keeps an image's signatures under: `sha256-<hex>.sig`. */
export function cosignSignatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/**
 * cosign's simple-signing payload, byte for byte as `cosign sign` writes it
 * (Go's encoding/json of payload.SimpleContainerImage): docker-reference is
 * the repository as go-containerregistry names it, `optional` null.
 */
export function simpleSigningPayload(repo: Reference, digest: string): Buffer {
  const registry = repo.registry === 'docker.io' ? 'index.docker.io' : repo.registry;
  return Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': `${registry}/${repo.repository}` }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
    optional: null,
  }));
}

/**
 * Signs `digest` in `repo` the way `cosign sign --key --tlog-upload=false`
 * does without the new bundle format: the payload as a layer of the
 * `sha256-<hex>.sig` manifest, its signature (base64 DER) in the layer's
 * annotation. An existing `.sig` manifest keeps its layers and gets this one
 * appended, as cosign appends; a signature by the same key on the same payload
 * already there is left as it is. Verified with `cosign verify --key`.
 */
export async function attachCosignSignature(args: {
  readonly client: RegistryClient;
  readonly repo: Reference;
  readonly digest: string;
  readonly signer: ManifestSigner;
  readonly logger: Logger;
}): Promise<{ readonly tag: string; readonly manifestDigest: string; readonly appended: boolean }> {
  const { client, repo, digest, signer, logger } = args;
  const tag = cosignSignatureTag(digest);
  const sigRef = withTag(repo, tag);
  const payload = simpleSigningPayload(repo, digest);
  const payloadDigest = sha256(payload);

  const existing = await readSignatureManifest(client, sigRef);
  if (existing && existing.manifest.layers.some((l) => l.digest === payloadDigest && signedBy(signer, payload, l.annotations?.[cosignSignatureAnnotation]))) {
    logger.info({ image: formatReference({ ...repo, digest }), tag }, 'already signed with this key');
    return { tag, manifestDigest: existing.digest, appended: false };
  }

  const signature = (await signer.sign(payload)).toString('base64');
  const layer: Descriptor = { mediaType: CosignMediaType.simpleSigning, digest: payloadDigest, size: payload.length, annotations: { [cosignSignatureAnnotation]: signature } };
  const layers = [...(existing?.manifest.layers ?? []), layer];
  // go-containerregistry's config for an empty image with these layers appended (uncompressed: diff_id = digest).
  const zeroTime = '0001-01-01T00:00:00Z';
  const config: SignatureConfig = {
    architecture: '', created: zeroTime, history: layers.map(() => ({ created: zeroTime })), os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {},
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest: SignatureManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: sha256(configBytes), size: configBytes.length },
    layers,
  };
  await client.pushBlob(repo, { digest: payloadDigest, size: payload.length }, async () => Readable.from([payload]));
  await client.pushBlob(repo, { digest: manifest.config.digest, size: configBytes.length }, async () => Readable.from([configBytes]));
  const manifestDigest = await client.putManifest(sigRef, Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
  logger.info({ image: formatReference({ ...repo, digest }), tag, signatures: layers.length }, 'signed');
  return { tag, manifestDigest, appended: existing !== undefined };
}

async function readSignatureManifest(client: RegistryClient, sigRef: Reference): Promise<{ manifest: SignatureManifest; digest: string } | undefined> {
  if (!(await client.headManifest(sigRef))) return undefined;
  const got = await client.getManifest(sigRef);
  const manifest = JSON.parse(got.bytes.toString('utf8')) as SignatureManifest;
  return { manifest: { ...manifest, layers: manifest.layers ?? [] }, digest: got.digest };
}

function signedBy(signer: ManifestSigner, payload: Buffer, signature: string | undefined): boolean {
  if (!signature) return false;
  try {
    return verify('sha256', payload, createPublicKey(signer.publicKeyPem), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { RegistryClient, ReferrerDescriptor } from '../oci/client.js';
import { OciError } from '../oci/errors.js';
import { MediaType } from '../oci/media-types.js';
import { withDigest, withTag, type Reference } from '../oci/reference.js';

/** The manifest an artifact refers to (OCI 1.1 `subject`). */
export interface SubjectDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

export interface AttachedArtifact {
  readonly digest: string;
  readonly size: number;
  readonly artifactType: string;
  /** How a client finds it: the registry's referrers API, or the `sha256-<hex>` tag schema. */
  readonly via: 'referrers-api' | 'tag-schema';
  readonly tag?: string;
}

/** The OCI 1.1 empty descriptor (`{}`), the config of an artifact without one. */
export const emptyConfig = {
  mediaType: MediaType.ociEmpty,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
  data: 'e30=',
} as const;

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The referrers tag schema's tag for a digest (distribution spec 1.1): `<alg>-<ref>`. */
export function referrersTag(digest: string): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex) throw new OciError('UNEXPECTED_STATUS', `not a digest: ${digest}`);
  return `${alg}-${hex}`.slice(0, 128);
}

/**
 * Pushes `document` as an OCI 1.1 artifact whose subject is `subject` (one
 * layer, the empty config) and makes it findable: a registry with the
 * referrers API indexes the subject itself; one without (CNCF distribution
 * 2.8) gets the spec's fallback, the index tagged `sha256-<hex>` listing the
 * subject's referrers, fetched, extended and put back. Concurrent writers of
 * the same fallback index can lose each other's entry (the spec has no
 * compare-and-swap); patchd writes one subject's evidence from one job.
 */
export async function attachReferrer(args: {
  readonly client: RegistryClient;
  /** The subject's repository; the artifact goes there too. */
  readonly repo: Reference;
  readonly subject: SubjectDescriptor;
  readonly artifactType: string;
  readonly document: Buffer;
  /** `org.opencontainers.image.title` of the layer, a file name for tools that save it (oras pull). */
  readonly title: string;
  readonly created: Date;
}): Promise<AttachedArtifact> {
  const { client, repo, subject, artifactType, document } = args;
  const blob = { mediaType: artifactType, digest: sha256(document), size: document.length, annotations: { 'org.opencontainers.image.title': args.title } };
  const created = args.created.toISOString();
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType,
    config: emptyConfig,
    layers: [blob],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { 'org.opencontainers.image.created': created },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  await client.pushBlob(repo, emptyConfig, async () => Readable.from([Buffer.from('{}')]));
  await client.pushBlob(repo, blob, async () => Readable.from([document]));
  const digest = await client.putManifest(withDigest(repo, sha256(bytes)), bytes, MediaType.ociManifest);
  const descriptor: ReferrerDescriptor = { mediaType: MediaType.ociManifest, digest, size: bytes.length, artifactType, annotations: manifest.annotations };

  // A registry that answers the referrers API has indexed the subject on the PUT (or will: it lists what it holds).
  const api = await client.getReferrers(repo, subject.digest);
  if (api?.manifests.some((m) => m.digest === digest)) return { digest, size: bytes.length, artifactType, via: 'referrers-api' };

  const tag = referrersTag(subject.digest);
  const existing = await readTagIndex(client, repo, tag);
  const index = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [...(existing?.manifests ?? []).filter((m) => m.digest !== digest), descriptor],
  };
  await client.putManifest(withTag(repo, tag), Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
  return { digest, size: bytes.length, artifactType, via: 'tag-schema', tag };
}

/**
 * The referrers of `digest` in `repo`, from the referrers API when the
 * registry has it, else from the `sha256-<hex>` tag index; only those of
 * `artifactType` when given.
 */
export async function listReferrers(client: RegistryClient, repo: Reference, digest: string, artifactType?: string): Promise<ReferrerDescriptor[]> {
  const api = await client.getReferrers(repo, digest);
  const manifests = api ? api.manifests : (await readTagIndex(client, repo, referrersTag(digest)))?.manifests ?? [];
  return manifests.filter((m) => artifactType === undefined || m.artifactType === artifactType);
}

/** The document (first layer) of a referrer artifact. */
export async function readReferrerDocument(client: RegistryClient, repo: Reference, referrer: Pick<ReferrerDescriptor, 'digest'>, maxBytes = 64 * 2 ** 20): Promise<Buffer> {
  const manifest = JSON.parse((await client.getManifest(withDigest(repo, referrer.digest))).bytes.toString('utf8')) as { layers?: { digest: string; size: number }[] };
  const layer = manifest.layers?.[0];
  if (!layer) throw new OciError('UNEXPECTED_STATUS', `referrer ${referrer.digest} has no layer`);
  if (layer.size > maxBytes) throw new OciError('MANIFEST_TOO_LARGE', `referrer ${referrer.digest}: its document is ${layer.size} bytes`);
  const chunks: Buffer[] = [];
  for await (const chunk of await client.openBlob(repo, layer)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readTagIndex(client: RegistryClient, repo: Reference, tag: string): Promise<{ manifests: ReferrerDescriptor[] } | undefined> {
  const ref = withTag(repo, tag);
  if (!(await client.headManifest(ref))) return undefined;
  const got = await client.getManifest(ref);
  const index = JSON.parse(got.bytes.toString('utf8')) as { manifests?: ReferrerDescriptor[] };
  return { manifests: index.manifests ?? [] };
}

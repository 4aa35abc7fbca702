import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { codedError, type ErrorCodes } from '../lib/errors.js';
import type { ManifestResponse, RegistryClient } from '../oci/client.js';
import { OciError } from '../oci/errors.js';
import { MediaType } from '../oci/media-types.js';
import { formatReference, type Reference } from '../oci/reference.js';
import { verifyingStream } from '../oci/verify.js';

export const ociLayoutCodes = { OCI_LAYOUT_INVALID: 'input' } as const satisfies ErrorCodes;
export class OciLayoutError extends codedError(ociLayoutCodes) {}

/** The annotation an OCI image layout names its tags with (read by skopeo's `oci:DIR:TAG`, umoci's `DIR:TAG`). */
export const refNameAnnotation = 'org.opencontainers.image.ref.name';

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Copa's `--oci-dir`: the result goes into an OCI image layout directory
 * (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) instead of a registry.
 *
 * It is a RegistryClient whose writes land in the layout and whose reads come
 * from the layout when it holds the thing asked for, else from the registry;
 * so the pipeline publishes exactly as it does to a registry (patch layer,
 * config, every base layer streamed from the registry and verified, platform
 * manifests, the index, referrers), and nothing is ever written to the
 * registry. A manifest is written only once everything it refers to is in
 * the layout: what the pipeline did not push (the platforms an index keeps)
 * is copied from the source repository, so the layout is complete. Manifests put by tag are listed in index.json under that tag.
 * Tags are the layout's own, except the source image's tag: so a patch
 * already in the registry under the target tag is not taken for a previous
 * patch of this layout.
 */
export function ociLayoutClient(upstream: RegistryClient, dir: string, options: { readonly source: Reference }): RegistryClient {
  const isSource = (ref: Reference) => !ref.digest && ref.registry === options.source.registry && ref.repository === options.source.repository && ref.tag === options.source.tag;
  const missing = (ref: Reference) => new OciError('MANIFEST_UNKNOWN', `${formatReference(ref)} is not in the OCI layout ${dir}`, { status: 404 });
  const blobPath = (digest: string) => {
    const [algorithm, hex] = digest.split(':');
    if (!algorithm || !hex || !/^[a-z0-9]+$/.test(algorithm) || !/^[a-f0-9]+$/.test(hex)) throw new OciLayoutError('OCI_LAYOUT_INVALID', `not a digest: ${digest}`);
    return join(dir, 'blobs', algorithm, hex);
  };
  const hasLocal = async (digest: string, size?: number) => {
    const info = await stat(blobPath(digest)).catch(() => undefined);
    return info !== undefined && (size === undefined || size < 0 || info.size === size);
  };
  let ready: Promise<void> | undefined;
  const prepare = () => (ready ??= initLayout(dir));
  // index.json is rewritten whole; one writer at a time.
  let indexQueue: Promise<unknown> = Promise.resolve();
  const updateIndex = (change: (entries: IndexEntry[]) => IndexEntry[]) => {
    const next = indexQueue.then(async () => {
      const index = await readIndex(dir);
      const updated = { ...index, manifests: change(index.manifests) };
      const partial = join(dir, 'index.json.partial');
      await writeFile(partial, `${JSON.stringify(updated, null, 2)}\n`);
      await rename(partial, join(dir, 'index.json'));
    });
    indexQueue = next.catch(() => undefined);
    return next;
  };
  const localManifest = async (ref: Reference): Promise<IndexEntry | undefined> => {
    if (ref.digest) {
      if (!(await hasLocal(ref.digest))) return undefined;
      const bytes = await readFile(blobPath(ref.digest));
      return { mediaType: mediaTypeOf(bytes), digest: ref.digest, size: bytes.length };
    }
    if (!ref.tag) return undefined;
    await prepare();
    return (await readIndex(dir)).manifests.find((m) => m.annotations?.[refNameAnnotation] === ref.tag);
  };

  /** Copies a blob from the source repository, streamed and verified, unless the layout has it. */
  const copyBlob = async (desc: { digest: string; size: number }) => {
    if (await hasLocal(desc.digest, desc.size)) return;
    const path = blobPath(desc.digest);
    await mkdir(join(path, '..'), { recursive: true });
    const partial = `${path}.partial`;
    try {
      await pipeline(await upstream.openBlob(options.source, desc), verifyingStream(desc), createWriteStream(partial));
      await rename(partial, path);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  };
  /** Makes the layout hold everything a manifest refers to (children of an index, config and layers of an image). */
  const copyMissing = async (bytes: Buffer): Promise<void> => {
    const parsed = JSON.parse(bytes.toString('utf8')) as { manifests?: { digest: string; size: number }[]; config?: { digest: string; size: number }; layers?: { digest: string; size: number }[] };
    for (const child of parsed.manifests ?? []) {
      if (await hasLocal(child.digest, child.size)) continue;
      const fetched = await upstream.getManifest({ registry: options.source.registry, repository: options.source.repository, digest: child.digest });
      if (fetched.digest !== child.digest) throw new OciLayoutError('OCI_LAYOUT_INVALID', `${formatReference(options.source)}@${child.digest} came back as ${fetched.digest}`);
      await copyMissing(fetched.bytes);
      const path = blobPath(child.digest);
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, fetched.bytes);
    }
    for (const blob of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) await copyBlob(blob);
  };

  return {
    ...upstream,
    async getManifest(ref): Promise<ManifestResponse> {
      if (isSource(ref)) return upstream.getManifest(ref);
      const local = await localManifest(ref);
      if (!local && !ref.digest) throw missing(ref);
      if (!local) return upstream.getManifest(ref);
      return { mediaType: local.mediaType, digest: local.digest, bytes: await readFile(blobPath(local.digest)) };
    },
    async headManifest(ref) {
      if (isSource(ref)) return upstream.headManifest(ref);
      const local = await localManifest(ref);
      if (!local && !ref.digest) return undefined;
      return local ? { mediaType: local.mediaType, digest: local.digest, size: local.size } : upstream.headManifest(ref);
    },
    async openBlob(repo, desc): Promise<Readable> {
      return (await hasLocal(desc.digest, desc.size)) ? createReadStream(blobPath(desc.digest)) : upstream.openBlob(repo, desc);
    },
    async hasBlob(repo, digest) {
      return (await hasLocal(digest)) || upstream.hasBlob(repo, digest);
    },
    async pushBlob(_repo, desc, open) {
      await prepare();
      if (await hasLocal(desc.digest, desc.size)) return 'exists';
      const path = blobPath(desc.digest);
      await mkdir(join(path, '..'), { recursive: true });
      const partial = `${path}.partial`;
      try {
        await pipeline(await open(), verifyingStream(desc), createWriteStream(partial));
        await rename(partial, path);
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
      return 'uploaded';
    },
    async putManifest(ref, bytes, mediaType) {
      await prepare();
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (ref.digest && ref.digest !== digest) throw new OciLayoutError('OCI_LAYOUT_INVALID', `manifest put as ${ref.digest} hashes to ${digest}`);
      // What the manifest points at comes first: an index keeps platforms the pipeline did not push (--platform).
      await copyMissing(bytes);
      const path = blobPath(digest);
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, bytes);
      const subject = subjectOf(bytes);
      if (ref.tag) {
        const entry: IndexEntry = { mediaType, digest, size: bytes.length, annotations: { [refNameAnnotation]: ref.tag } };
        await updateIndex((entries) => [...entries.filter((m) => m.annotations?.[refNameAnnotation] !== ref.tag), entry]);
      } else if (subject) {
        // A referrer (VEX, signature) put by digest: listed so that it is reachable from the layout's root.
        const entry: IndexEntry = { mediaType, digest, size: bytes.length, ...(subject.artifactType ? { artifactType: subject.artifactType } : {}) };
        await updateIndex((entries) => [...entries.filter((m) => m.digest !== digest), entry]);
      }
      return digest;
    },
    async listTags() {
      await prepare();
      return (await readIndex(dir)).manifests.map((m) => m.annotations?.[refNameAnnotation]).filter((t): t is string => Boolean(t));
    },
  };
}

/** Creates the layout's skeleton, or accepts an existing layout (new tags are added to it). */
async function initLayout(dir: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const marker = await readFile(join(dir, 'oci-layout'), 'utf8').catch(() => undefined);
  if (marker !== undefined) {
    let version: unknown;
    try { version = (JSON.parse(marker) as { imageLayoutVersion?: unknown }).imageLayoutVersion; } catch { /* reported below */ }
    if (version !== '1.0.0') throw new OciLayoutError('OCI_LAYOUT_INVALID', `${dir}/oci-layout is not an OCI image layout 1.0.0 marker`);
  } else {
    await writeFile(join(dir, 'oci-layout'), `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`);
  }
  const existing = await readFile(join(dir, 'index.json'), 'utf8').catch(() => undefined);
  if (existing === undefined) await writeFile(join(dir, 'index.json'), `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }, null, 2)}\n`);
}

async function readIndex(dir: string): Promise<{ schemaVersion: number; mediaType?: string; manifests: IndexEntry[] }> {
  const text = await readFile(join(dir, 'index.json'), 'utf8');
  let index: { schemaVersion?: number; mediaType?: string; manifests?: IndexEntry[] };
  try { index = JSON.parse(text) as typeof index; } catch { throw new OciLayoutError('OCI_LAYOUT_INVALID', `${dir}/index.json is not JSON`); }
  return { schemaVersion: 2, ...index, manifests: Array.isArray(index.manifests) ? index.manifests : [] };
}

function mediaTypeOf(bytes: Buffer): string {
  try { return (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? MediaType.ociManifest; } catch { return MediaType.ociManifest; }
}

function subjectOf(bytes: Buffer): { artifactType?: string } | undefined {
  try {
    const m = JSON.parse(bytes.toString('utf8')) as { subject?: unknown; artifactType?: string; config?: { mediaType?: string } };
    if (!m.subject) return undefined;
    const artifactType = m.artifactType ?? m.config?.mediaType;
    return artifactType ? { artifactType } : {};
  } catch {
    return undefined;
  }
}

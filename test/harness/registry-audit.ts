import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { run } from './tools.js';

// Everything a registry holds, checked from the registry itself (not through a
// proxy): every repository in the catalog, every tag, every manifest those
// tags reach (index children included), each manifest and blob re-hashed
// against its digest, and each gzip layer's uncompressed hash against the
// config's diff_ids. What tests use to prove that nothing invalid was pushed.

const manifestAccept = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface AuditedManifest { readonly repository: string; readonly reference: string; readonly digest: string; readonly mediaType: string }
export interface RegistryAudit {
  /** repository → its tags, sorted. */
  readonly tags: Map<string, string[]>;
  readonly manifests: AuditedManifest[];
  /** Blobs checked (each (repository, digest) once; each digest's content hashed once). */
  readonly blobs: number;
  /** What did not verify, in words; empty when everything did. */
  readonly problems: string[];
}

async function get(url: string, accept?: string): Promise<{ status: number; body: Buffer; contentDigest?: string; contentType?: string }> {
  const res = await fetch(url, accept ? { headers: { accept } } : {});
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body, contentDigest: res.headers.get('docker-content-digest') ?? undefined, contentType: res.headers.get('content-type') ?? undefined };
}

export async function auditRegistry(registryUrl: string): Promise<RegistryAudit> {
  const problems: string[] = [];
  const manifests: AuditedManifest[] = [];
  const tags = new Map<string, string[]>();
  const blobsSeen = new Set<string>();
  // A blob's content is hashed once (the biggest are tens of MB): in later repositories and manifests only its presence and size are checked.
  const hashed = new Map<string, { size: number; diffId?: string }>();
  // distribution answers at most 1000 repositories per page by default (and refuses a larger n).
  const listing = await get(`${registryUrl}/v2/_catalog?n=1000`);
  if (listing.status !== 200) throw new Error(`${registryUrl}/v2/_catalog answered ${listing.status}: ${listing.body.toString().slice(0, 300)}`);
  const catalog = JSON.parse(listing.body.toString()) as { repositories: string[] };
  for (const repository of catalog.repositories) {
    const tagList = await get(`${registryUrl}/v2/${repository}/tags/list`);
    // A repository with blobs but no manifest yet (mounted blobs) is NAME_UNKNOWN to tags/list: no tags.
    if (tagList.status !== 200 && tagList.status !== 404) throw new Error(`${repository}: tags/list answered ${tagList.status}`);
    const list = (tagList.status === 404 ? { tags: [] } : JSON.parse(tagList.body.toString())) as { tags: string[] | null };
    const repoTags = [...(list.tags ?? [])].sort();
    tags.set(repository, repoTags);
    const seen = new Set<string>();
    const visit = async (reference: string, expected?: string): Promise<void> => {
      const res = await get(`${registryUrl}/v2/${repository}/manifests/${reference}`, manifestAccept);
      const where = `${repository}@${reference}`;
      if (res.status !== 200) { problems.push(`${where}: manifest GET answered ${res.status}`); return; }
      const digest = sha256(res.body);
      if (expected && digest !== expected) problems.push(`${where}: manifest hashes to ${digest}`);
      if (res.contentDigest && res.contentDigest !== digest) problems.push(`${where}: Docker-Content-Digest ${res.contentDigest}, content hashes to ${digest}`);
      if (seen.has(digest)) return;
      seen.add(digest);
      let manifest: { mediaType?: string; manifests?: { digest: string }[]; config?: { digest: string; size: number; mediaType?: string }; layers?: { digest: string; size: number; mediaType?: string }[] };
      try { manifest = JSON.parse(res.body.toString('utf8')); } catch (error) { problems.push(`${where}: manifest is not JSON: ${(error as Error).message}`); return; }
      const mediaType = manifest.mediaType ?? res.contentType ?? '';
      manifests.push({ repository, reference, digest, mediaType });
      if (manifest.manifests) {
        for (const child of manifest.manifests) await visit(child.digest, child.digest);
        return;
      }
      if (!manifest.config || !Array.isArray(manifest.layers)) { problems.push(`${where}: neither an index nor an image manifest`); return; }
      const config = await blob(repository, manifest.config, where);
      let diffIds: string[] | undefined;
      if (config && /image\.config|container\.image/.test(manifest.config.mediaType ?? '')) {
        try { diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids; } catch { problems.push(`${where}: image config is not JSON`); }
        if (!diffIds || diffIds.length !== manifest.layers.length) problems.push(`${where}: ${diffIds?.length ?? 'no'} diff_ids for ${manifest.layers.length} layers`);
      }
      for (const [i, layer] of manifest.layers.entries()) {
        const data = await blob(repository, layer, where);
        if (!diffIds?.[i] || !/gzip/.test(layer.mediaType ?? '')) continue;
        let diffId = hashed.get(layer.digest)?.diffId;
        if (data && !diffId) {
          try { diffId = sha256(gunzipSync(data)); } catch (error) { problems.push(`${where}: layer ${layer.digest} does not gunzip: ${(error as Error).message}`); }
          const known = hashed.get(layer.digest);
          if (known && diffId) known.diffId = diffId;
        }
        if (diffId && diffId !== diffIds[i]) problems.push(`${where}: layer ${layer.digest} uncompressed hashes to ${diffId}, config says ${diffIds[i]}`);
      }
    };
    const blob = async (repo: string, descriptor: { digest: string; size: number }, where: string): Promise<Buffer | undefined> => {
      blobsSeen.add(`${repo}@${descriptor.digest}`);
      const known = hashed.get(descriptor.digest);
      if (known) {
        const head = await fetch(`${registryUrl}/v2/${repo}/blobs/${descriptor.digest}`, { method: 'HEAD' });
        if (head.status !== 200) problems.push(`${where}: blob ${descriptor.digest} HEAD answered ${head.status}`);
        if (known.size !== descriptor.size) problems.push(`${where}: blob ${descriptor.digest} has ${known.size} bytes, descriptor says ${descriptor.size}`);
        return undefined;
      }
      const res = await get(`${registryUrl}/v2/${repo}/blobs/${descriptor.digest}`);
      if (res.status !== 200) { problems.push(`${where}: blob ${descriptor.digest} GET answered ${res.status}`); return undefined; }
      if (sha256(res.body) !== descriptor.digest) problems.push(`${where}: blob ${descriptor.digest} hashes to ${sha256(res.body)}`);
      else hashed.set(descriptor.digest, { size: res.body.length });
      if (res.body.length !== descriptor.size) problems.push(`${where}: blob ${descriptor.digest} has ${res.body.length} bytes, descriptor says ${descriptor.size}`);
      return res.body;
    };
    for (const tag of repoTags) await visit(tag);
  }
  return { tags, manifests, blobs: blobsSeen.size, problems };
}

/** Blob files already re-hashed, per layout: a layout shared by several copies hashes each blob once. */
const rehashed = new Map<string, Set<string>>();

/**
 * `skopeo copy docker://… oci:<dir>:<tag>` straight from the registry (skopeo
 * checks every blob's digest as it copies; blobs already in the layout are not
 * copied again), then every blob in the layout not yet checked hashed again
 * against its file name. Returns the number of blobs the image has in the layout.
 */
export async function skopeoCopyAndRehash(registryHost: string, image: string, layoutDir: string, tag = 'copied'): Promise<number> {
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registryHost}/${image}`, `oci:${layoutDir}:${tag}`]);
  const dir = join(layoutDir, 'blobs', 'sha256');
  const done = rehashed.get(layoutDir) ?? new Set<string>();
  rehashed.set(layoutDir, done);
  for (const name of await readdir(dir)) {
    if (done.has(name)) continue;
    const actual = createHash('sha256').update(await readFile(join(dir, name))).digest('hex');
    if (actual !== name) throw new Error(`${image}: blob ${name} in the copied layout hashes to ${actual}`);
    done.add(name);
  }
  // The image's own blobs: its manifest, config and layers, as the layout's index names them.
  const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`${image}: no ${tag} in the copied layout`);
  const manifest = JSON.parse(await readFile(join(dir, entry.digest.slice('sha256:'.length)), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  const own = [entry.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  for (const digest of own) if (!done.has(digest.slice('sha256:'.length))) throw new Error(`${image}: ${digest} is missing from the copied layout`);
  return own.length;
}

import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { run, tmpDir } from './tools.js';

// Puts test images into a real registry without any of patchd's code, so a
// bug in patchd's image handling cannot hide itself in the fixture. The OCI
// layout is written by hand (node:crypto, node:zlib) and skopeo pushes it.

const repoRoot = new URL('../..', import.meta.url).pathname;

let rootfsTar: Promise<string> | undefined;

/** Path of the cached, genuinely outdated bookworm rootfs.tar (built once by test/fixtures/build-bookworm.sh). */
let appLayers: Promise<string> | undefined;

/** Directory of the cached application layers (python.tar, node.tar, go.tar, rpm.tar, rpm-bdb.tar) built by test/fixtures/build-app-layers.sh. */
export function appLayersDir(): Promise<string> {
  appLayers ??= run('bash', [join(repoRoot, 'test/fixtures/build-app-layers.sh')], { cwd: repoRoot }).then(
    ({ stdout }) => stdout.trim().split('\n').at(-1)!,
    (err: unknown) => { appLayers = undefined; throw err; },
  );
  return appLayers;
}

export function bookwormRootfsTar(): Promise<string> {
  rootfsTar ??= run('bash', [join(repoRoot, 'test/fixtures/build-bookworm.sh')], { cwd: repoRoot }).then(
    ({ stdout }) => {
      const path = stdout.trim().split('\n').at(-1);
      if (!path?.endsWith('rootfs.tar')) throw new Error(`build-bookworm.sh printed no rootfs.tar path: ${stdout}`);
      return path;
    },
    (err: unknown) => {
      rootfsTar = undefined; // let a later caller retry
      throw err;
    },
  );
  return rootfsTar;
}

export interface PushRootfsImageArgs {
  readonly tarPath: string;
  /** For a registry behind htpasswd. */
  readonly creds?: { readonly username: string; readonly password: string };
  /** More layer tars stacked on top of `tarPath`, in order. */
  readonly extraLayers?: readonly string[];
  /** host:port of a plain-HTTP registry. */
  readonly registryHost: string;
  readonly repository: string;
  readonly tag: string;
  /** OCI/Go architecture name; default amd64. */
  readonly architecture?: string;
  /** Media types of the pushed manifest, config and layer; default 'oci'. */
  readonly mediaTypes?: 'oci' | 'docker';
  /** How every layer is compressed; default gzip. zstd (by the zstd CLI, not node:zlib) needs 'oci' media types. */
  readonly compression?: 'gzip' | 'zstd';
}

export interface PushedImage {
  /** Digest of the manifest as stored in the registry. */
  readonly digest: string;
  /** Digest of the first layer's (compressed) blob. */
  readonly layerDigest: string;
}

const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Passes bytes through, hashing and counting them. */
class Measure extends Transform {
  readonly hash: Hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }
}

async function writeBlob(layout: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)), data);
  return { digest, size: Buffer.byteLength(data) };
}

/** One gzip (or zstd) layer from the tar, with diffID (of the tar) and digest (of the compressed blob). */
async function writeLayer(layout: string, tarPath: string, compression: 'gzip' | 'zstd' = 'gzip'): Promise<{ digest: string; diffId: string; size: number }> {
  const uncompressed = new Measure();
  const compressed = new Measure();
  const partial = join(layout, 'blobs', 'sha256', 'layer.partial');
  if (compression === 'gzip') await pipeline(createReadStream(tarPath), uncompressed, createGzip(), compressed, createWriteStream(partial));
  else {
    // The reference zstd encoder, so patchd's reader is not judged by its own writer.
    const zstd = spawn('zstd', ['-q', '-c', '-3', tarPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve, reject) => {
      zstd.on('error', reject);
      zstd.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd ${tarPath} exited ${code}`))));
    });
    await Promise.all([pipeline(zstd.stdout, compressed, createWriteStream(partial)), pipeline(createReadStream(tarPath), uncompressed, new Writable({ write: (_chunk, _encoding, callback) => callback() })), exited]);
  }
  const digest = `sha256:${compressed.hash.digest('hex')}`;
  await rename(partial, join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  return { digest, diffId: `sha256:${uncompressed.hash.digest('hex')}`, size: compressed.size };
}

/**
 * Builds a one-layer image from a rootfs tar and pushes it to
 * `registryHost/repository:tag`, then checks through the registry that the
 * layer we computed is the layer that landed.
 */
export async function pushRootfsImage(args: PushRootfsImageArgs): Promise<PushedImage> {
  const architecture = args.architecture ?? 'amd64';
  const mediaTypes = args.mediaTypes ?? 'oci';
  const compression = args.compression ?? 'gzip';
  if (compression === 'zstd' && mediaTypes !== 'oci') throw new Error('zstd fixture layers are pushed with OCI media types only');
  const work = await tmpDir('patchd-fixture-image');
  try {
    const layout = join(work.path, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

    const layer = await writeLayer(layout, args.tarPath, compression);
    const extra = [];
    for (const tar of args.extraLayers ?? []) extra.push(await writeLayer(layout, tar, compression));
    const layers = [layer, ...extra];
    // A fixed creation time keeps the fixture's digests stable across runs.
    const created = '2024-01-01T00:00:00Z';
    const config = await writeBlob(
      layout,
      JSON.stringify({
        created,
        architecture,
        os: 'linux',
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['bash'] },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: [args.tarPath, ...(args.extraLayers ?? [])].map((t) => ({ created, created_by: `patchd test fixture from ${t.split('/').at(-1)}` })),
      }),
    );
    const manifest = await writeBlob(
      layout,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar+${compression}`, digest: l.digest, size: l.size })),
      }),
    );
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: manifest.digest,
            size: manifest.size,
            annotations: { 'org.opencontainers.image.ref.name': args.tag },
          },
        ],
      }),
    );

    const target = `docker://${args.registryHost}/${args.repository}:${args.tag}`;
    const digestFile = join(work.path, 'digest');
    // OCI: push our manifest byte for byte. Docker: skopeo rewrites only the
    // manifest's media types (v2s2); gzip layers and the config blob are copied as they are.
    const format = mediaTypes === 'oci' ? ['--preserve-digests'] : ['--format', 'v2s2'];
    const creds = args.creds ? `${args.creds.username}:${args.creds.password}` : undefined;
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : []), ...format, '--digestfile', digestFile, `oci:${layout}:${args.tag}`, target]);

    const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), target]);
    const pushed = JSON.parse(raw.stdout) as { mediaType?: string; layers?: { digest?: string; mediaType?: string }[] };
    const digest = sha256(raw.stdout);
    const reported = (await readFile(digestFile, 'utf8')).trim();
    const expectedManifestType =
      mediaTypes === 'oci' ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json';
    if (digest !== reported) throw new Error(`registry serves manifest ${digest}, skopeo pushed ${reported}`);
    if (pushed.mediaType !== expectedManifestType) throw new Error(`pushed manifest is ${pushed.mediaType}, wanted ${expectedManifestType}`);
    if (pushed.layers?.length !== layers.length || pushed.layers.some((l, i) => l.digest !== layers[i]!.digest)) {
      throw new Error(`pushed layers ${JSON.stringify(pushed.layers)} are not our layer ${layer.digest}`);
    }
    if (mediaTypes === 'oci' && digest !== manifest.digest) throw new Error(`manifest was rewritten on push: ${manifest.digest} -> ${digest}`);
    return { digest, layerDigest: layer.digest };
  } finally {
    await work.remove();
  }
}

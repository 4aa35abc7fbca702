import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { forEachEntry } from '../../image/filesystem.js';
import type { Layer } from '../../image/layer.js';
import { ImageManifestSchema, ImageConfigSchema } from '../../image/types.js';
import type { Logger } from '../../lib/log.js';
import type { Keychain } from '../../oci/keychain.js';
import { readAllBytes } from '../../lib/streams.js';
import { layerCompressionOf } from '../../oci/media-types.js';
import type { BuildkitClient } from './client.js';
import { BuildkitError } from './errors.js';
import { diff, image, marshal, type LlbState } from './llb.js';
import type { Platform } from './proto/ops.js';
import { openSession } from './session.js';

export interface BuildkitRun {
  readonly client: BuildkitClient;
  /** Credentials buildkitd asks for (through the session) to pull the base image. */
  readonly keychain?: Keychain;
  /** The base image as buildkitd should pull it: registry/repo@sha256:… */
  readonly baseRef: string;
  readonly platform: Platform;
  readonly workDir: string;
  readonly logger: Logger;
  readonly onLog?: (line: string) => void;
  /** A build step started (BuildKit's vertex name): for progress displays. */
  readonly onStep?: (name: string) => void;
}

/**
 * Solves `build(base)` on buildkitd and returns the patch layer: the diff
 * between the two states the strategy returns, exported with the `oci`
 * exporter and streamed back through the session (FileSend.DiffCopy).
 * `mediaType` (a gzip or zstd layer type) decides the exporter's compression.
 */
export async function buildPatchLayer(run: BuildkitRun, build: (base: LlbState) => { lower: LlbState; upper: LlbState }, mediaType: string): Promise<Layer & { readonly diffId: string }> {
  const compression = layerCompressionOf(mediaType);
  if (compression !== 'gzip' && compression !== 'zstd') throw new BuildkitError('BUILDKIT_EXPORT_INVALID', `patch layers are exported gzip or zstd compressed, not as ${mediaType}`);
  const base = image(run.baseRef, { platform: run.platform });
  const { lower, upper } = build(base);
  const { definition } = marshal(diff(lower, upper, 'patch layer'));
  const outDir = join(run.workDir, `buildkit-${Date.now()}`);
  await mkdir(outDir, { recursive: true });
  const tarPath = join(outDir, 'oci.tar');
  const out = createWriteStream(tarPath, { mode: 0o600 });
  let sessionError: Error | undefined;
  const session = openSession(run.client, { ...(run.keychain ? { keychain: run.keychain } : {}), exportTo: () => out, onError: (e) => { sessionError = e; } });
  const ref = `patchd-${session.id}`;
  const failedVertices: string[] = [];
  const startedVertices = new Set<string>();
  const logTail: string[] = [];
  const status = run.client.status(ref, (update) => {
    for (const v of update.vertexes) {
      if (v.started && !v.completed && !startedVertices.has(v.digest)) { startedVertices.add(v.digest); run.onStep?.(v.name); }
      if (v.error) failedVertices.push(`${v.name}: ${v.error}`);
      else if (v.completed) run.logger.debug({ vertex: v.name, cached: v.cached }, 'buildkit step done');
    }
    for (const l of update.logs) {
      for (const line of l.msg.toString('utf8').split('\n').filter(Boolean)) {
        logTail.push(line);
        if (logTail.length > 30) logTail.shift();
        run.onLog?.(line);
      }
    }
  }).catch((error: Error) => run.logger.warn({ err: error.message }, 'buildkit status stream failed'));
  try {
    await run.client.solve({ ref, definition, session: session.id, exporters: [{ type: 'oci', attrs: { compression, 'force-compression': 'true' } }] });
    await status;
  } catch (error) {
    await status;
    const detail = failedVertices.length > 0 ? `${failedVertices.join('; ')}\n${logTail.join('\n')}` : (error as Error).message;
    throw new BuildkitError('BUILDKIT_SOLVE_FAILED', `BuildKit build failed: ${detail}`, { cause: error });
  } finally {
    await session.close();
    if (!out.closed) out.end();
    await finished(out).catch(() => undefined);
  }
  if (sessionError) throw new BuildkitError('BUILDKIT_EXPORT_FAILED', `exporting the patch layer failed: ${sessionError.message}`);
  return extractSingleLayer(tarPath, outDir, mediaType);
}

/** The one layer of the exported OCI layout (a diff exports as one), copied out to its own file. */
async function extractSingleLayer(tarPath: string, outDir: string, mediaType: string): Promise<Layer & { readonly diffId: string }> {
  const small = new Map<string, Buffer>();
  const wanted = new Set<string>();
  // Pass 1: the small JSON documents (index, manifest, config).
  await forEachEntry(createReadStream(tarPath), async (header, body) => {
    if (header.type === 'file' && (header.size ?? 0) <= 4 * 2 ** 20) small.set(header.name.replace(/^\.\//, ''), await readAllBytes(body));
    else await drain(body);
  });
  const json = (name: string) => {
    const bytes = small.get(name);
    if (!bytes) throw new BuildkitError('BUILDKIT_EXPORT_INVALID', `exported OCI layout lacks ${name}`);
    return JSON.parse(bytes.toString('utf8')) as unknown;
  };
  const blob = (digest: string) => `blobs/${digest.replace(':', '/')}`;
  const index = json('index.json') as { manifests?: { digest: string }[] };
  const manifestDigest = index.manifests?.[0]?.digest;
  if (!manifestDigest) throw new BuildkitError('BUILDKIT_EXPORT_INVALID', 'exported OCI index names no manifest');
  const manifest = ImageManifestSchema.parse(json(blob(manifestDigest)));
  const config = ImageConfigSchema.parse(json(blob(manifest.config.digest)));
  if (manifest.layers.length !== 1 || config.rootfs.diff_ids.length !== 1) {
    throw new BuildkitError('BUILDKIT_EXPORT_INVALID', `expected the patch as one layer, BuildKit exported ${manifest.layers.length}`);
  }
  const layerDesc = manifest.layers[0]!;
  if (layerCompressionOf(layerDesc.mediaType) !== layerCompressionOf(mediaType)) throw new BuildkitError('BUILDKIT_EXPORT_INVALID', `unexpected layer media type ${layerDesc.mediaType} (asked for ${mediaType})`);
  wanted.add(blob(layerDesc.digest));
  const layerPath = join(outDir, 'layer.blob');
  // Pass 2: copy the layer blob out of the tarball.
  await forEachEntry(createReadStream(tarPath), async (header, body) => {
    if (wanted.has(header.name.replace(/^\.\//, ''))) await pipeline(body, createWriteStream(layerPath, { mode: 0o600 }));
    else await drain(body);
  });
  await rm(tarPath, { force: true });
  return {
    mediaType, digest: layerDesc.digest, size: layerDesc.size, diffId: config.rootfs.diff_ids[0]!,
    open: async () => createReadStream(layerPath),
  };
}

function drain(body: Readable): Promise<void> {
  return new Promise((resolve, reject) => { body.on('end', resolve); body.on('error', reject); body.resume(); });
}

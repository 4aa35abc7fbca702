import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { MediaType } from '../oci/media-types.js';
import { ImageError } from './errors.js';

/** A layer is a descriptor plus an opener (ggcr tarball.LayerFromOpener): nothing is read until open(). */
export interface Layer {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly diffId?: string;
  /** The blob as stored (compressed). */
  open(): Promise<Readable>;
}

export interface DecompressLimits {
  /** Most uncompressed bytes one layer may expand to. */
  readonly maxBytes: number;
  /** Expansion ratio past which a layer bigger than `ratioFloorBytes` is treated as a bomb. */
  readonly maxRatio?: number;
  readonly ratioFloorBytes?: number;
}

export const defaultDecompressLimits: DecompressLimits = { maxBytes: 16 * 2 ** 30, maxRatio: 200, ratioFloorBytes: 2 ** 30 };

const gzipTypes = new Set<string>([MediaType.ociLayerGzip, MediaType.dockerLayerGzip, MediaType.dockerForeignLayerGzip]);

/** The layer's tar stream, decompressed by media type, with a decompression-bomb guard. */
export async function openLayerTar(layer: Layer, limits: DecompressLimits = defaultDecompressLimits): Promise<Readable> {
  let decompressor: Transform | undefined;
  if (gzipTypes.has(layer.mediaType)) decompressor = createGunzip();
  else if (layer.mediaType === MediaType.ociLayerZstd) {
    throw new ImageError('UNSUPPORTED_MEDIA_TYPE', `zstd layers are not supported yet (${layer.digest})`);
  } else if (layer.mediaType !== MediaType.ociLayerTar && layer.mediaType !== 'application/vnd.docker.image.rootfs.diff.tar') {
    throw new ImageError('UNSUPPORTED_MEDIA_TYPE', `unsupported layer media type ${layer.mediaType} (${layer.digest})`);
  }
  const source = await layer.open();
  const guard = byteLimit(layer, limits);
  if (!decompressor) return source.pipe(guard);
  source.on('error', (error) => decompressor.destroy(error));
  decompressor.on('error', (error) => guard.destroy(error));
  return source.pipe(decompressor).pipe(guard);
}

function byteLimit(layer: Layer, limits: DecompressLimits): Transform {
  const ratioCap = limits.maxRatio && limits.ratioFloorBytes !== undefined
    ? Math.max(limits.ratioFloorBytes, layer.size * limits.maxRatio) : Infinity;
  const cap = Math.min(limits.maxBytes, ratioCap);
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > cap) {
        callback(new ImageError('DECOMPRESSION_LIMIT', `layer ${layer.digest} expands past ${cap} bytes: refusing it as a decompression bomb`));
        return;
      }
      callback(null, chunk);
    },
  });
}

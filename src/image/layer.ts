import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { constants as zlib, createGunzip, createZstdDecompress } from 'node:zlib';
import { layerCompressionOf } from '../oci/media-types.js';
import { ImageError } from './errors.js';
import { zlibChunkBytes } from '../lib/streams.js';

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

/**
 * zstd frames name the window they need; libzstd's default ceiling (2^27,
 * 128 MiB) is stated here so a frame asking for more (`zstd --long=31`) is
 * refused instead of allocating it. The output is bounded by byteLimit, as gzip's.
 */
const zstdWindowLogMax = 27;

function decompressorFor(layer: Layer): Transform | undefined {
  switch (layerCompressionOf(layer.mediaType)) {
    case 'gzip': return createGunzip({ chunkSize: zlibChunkBytes });
    case 'zstd': return createZstdDecompress({ chunkSize: zlibChunkBytes, params: { [zlib.ZSTD_d_windowLogMax]: zstdWindowLogMax } });
    case 'none': return undefined;
    default: throw new ImageError('UNSUPPORTED_MEDIA_TYPE', `unsupported layer media type ${layer.mediaType} (${layer.digest})`);
  }
}

/**
 * The layer's tar stream: blob → decompressor (gzip or zstd, by media type) → decompression-bomb guard.
 *
 * The three are joined so that a failure anywhere, or the consumer destroying
 * the tar stream, destroys all of them down to the blob (and its HTTP body).
 * When decompressing or reading the tar fails (the consumer destroys the tar
 * stream with its error), the rest of the blob is read first, bytes discarded:
 * damaged bytes trip the decompressor or the tar parser long before the blob's verifier
 * (`client.openBlob`) reaches the end and can judge them, and its
 * BLOB_DIGEST_MISMATCH is the failure to report, with the parse error as its
 * cause. If the blob verifies, the parse error stands. The tar stream then
 * fails with that root cause (its 'error' event; `errored` keeps what it was
 * destroyed with). The blob is bounded by the descriptor's size, so this ends.
 */
export async function openLayerTar(layer: Layer, limits: DecompressLimits = defaultDecompressLimits): Promise<Readable> {
  const decompressor = decompressorFor(layer);
  const blob = await layer.open();

  const rootCause = async (error: Error): Promise<Error> => {
    try {
      await readToEnd(blob);
    } catch {
      const blobError = blob.errored;
      if (blobError && blobError !== error) return withCause(blobError, error);
    }
    return error;
  };
  // The uncompressed bytes must be what the config says (its diff_id): a patched image carries the base layers over as they are.
  const diff = layer.diffId?.startsWith('sha256:') ? createHash('sha256') : undefined;
  const guard = byteLimit(layer, limits, {
    // Only a verified blob makes a finished layer: wait for its end (it has come, unless the decompressor stopped early).
    flush: async () => {
      await readToEnd(blob);
      const actual = diff && `sha256:${diff.digest('hex')}`;
      if (actual && actual !== layer.diffId) throw new ImageError('DIFF_ID_MISMATCH', `layer ${layer.digest} uncompresses to ${actual}, not to ${layer.diffId} as the image's config says`);
    },
    ...(diff ? { see: (chunk: Buffer) => { diff.update(chunk); } } : {}),
    destroy: async (error) => {
      blob.unpipe();
      decompressor?.destroy();
      const verdict = error && !gaveUp(error) ? await rootCause(error) : error;
      blob.destroy();
      return verdict;
    },
  });

  // Not stream.pipeline: it would destroy the blob on a parse error, before its verifier could judge the bytes.
  blob.on('error', (error) => guard.destroy(error));
  if (!decompressor) {
    blob.pipe(guard);
    return guard;
  }
  decompressor.on('error', (error) => guard.destroy(new ImageError('LAYER_INVALID', `layer ${layer.digest} does not decompress: ${error.message}`, { cause: error })));
  blob.pipe(decompressor).pipe(guard);
  return guard;
}

/** A consumer that stopped reading (an iterator's break, a pipeline torn down) is not a parse error: nothing to judge. */
function gaveUp(error: Error): boolean {
  return error.name === 'AbortError' || (error as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/** Resolves when `blob` has ended (reading and discarding what is left), rejects with its error. */
function readToEnd(blob: Readable): Promise<void> {
  if (blob.errored) return Promise.reject(blob.errored);
  if (blob.readableEnded) return Promise.resolve();
  blob.unpipe();
  blob.resume();
  return finished(blob, { writable: false });
}

/** The verifier's error keeps the parse error it explains, unless it already has a cause of its own. */
function withCause(error: Error, cause: Error): Error {
  if (error.cause === undefined) Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
  return error;
}

function byteLimit(layer: Layer, limits: DecompressLimits, hooks: { flush(): Promise<void>; destroy(error: Error | null): Promise<Error | null>; see?(chunk: Buffer): void }): Transform {
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
      hooks.see?.(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      hooks.flush().then(() => callback(), callback);
    },
    destroy(error, callback) {
      hooks.destroy(error).then(callback, callback);
    },
  });
}

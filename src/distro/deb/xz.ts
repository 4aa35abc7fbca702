import { Readable } from 'node:stream';
import xzPackage from 'xz-decompress';

const { XzReadableStream } = xzPackage;

/** Streaming xz decompression (xz-embedded compiled to WebAssembly; no native addon). */
export function xzDecompress(input: Readable): Readable {
  const web = new XzReadableStream(Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>);
  return Readable.fromWeb(web as unknown as Parameters<typeof Readable.fromWeb>[0]);
}

import type { Readable } from 'node:stream';

/** The whole of a (small, bounded by the caller) stream as one Buffer. */
export async function readAllBytes(stream: Readable | AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

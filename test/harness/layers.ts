import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { Layer } from '../../src/image/layer.js';
import { MediaType } from '../../src/oci/media-types.js';

/** An uncompressed layer read straight from a tar file on disk. */
export function layerFromTarFile(path: string): Layer {
  return { mediaType: MediaType.ociLayerTar, digest: `file:${path}`, size: 0, open: async () => createReadStream(path) };
}

export type TarEntry =
  | { readonly path: string; readonly content: string | Buffer; readonly mode?: number }
  | { readonly path: string; readonly type: 'directory' | 'symlink' | 'link'; readonly linkname?: string };

/** An uncompressed layer built in memory from entries (whiteouts are just files named .wh.*). */
export async function layerFromEntries(entries: readonly TarEntry[], name = 'memory'): Promise<Layer> {
  const pack = tar.pack();
  for (const e of entries) {
    if ('content' in e) pack.entry({ name: e.path, mode: e.mode ?? 0o644 }, e.content);
    else pack.entry({ name: e.path, type: e.type, mode: 0o755, ...(e.linkname ? { linkname: e.linkname } : {}) });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  return { mediaType: MediaType.ociLayerTar, digest: `memory:${name}`, size: bytes.length, open: async () => Readable.from([bytes]) };
}

/** Every file under `dir` as layer entries rooted at `prefix`. */
export async function entriesFromDir(dir: string, prefix = ''): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else out.push({ path: join(prefix, relative(dir, full)), content: await readFile(full), mode: (await stat(full)).mode & 0o777 });
    }
  };
  await walk(dir);
  return out;
}

import type { FileHandle } from 'node:fs/promises';
import { openZipEntry, readZipDirectory, type ZipEntry } from '../../lib/zip.js';
import { DotnetError } from './errors.js';

/**
 * A .nupkg (a zip) read through its central directory: the names first, then
 * only the entries asked for, each bounded so a hostile package cannot
 * exhaust memory (the zip format itself is lib/zip.ts's).
 */
export interface NupkgArchive {
  /** Entry names as stored (OPC percent-encoding kept), directories left out. */
  readonly names: readonly string[];
  read(name: string, maxBytes?: number): Promise<Buffer>;
}

const defaultMaxEntryBytes = 256 * 2 ** 20;

export async function openNupkg(file: FileHandle, label: string): Promise<NupkgArchive> {
  const fail = (why: string, cause?: unknown) => new DotnetError('NUPKG_INVALID', `${label} is not a valid .nupkg: ${why}`, cause === undefined ? undefined : { cause });
  let directory: ZipEntry[];
  try {
    directory = await readZipDirectory(file);
  } catch (error) {
    throw fail((error as Error).message, error);
  }
  const entries = new Map<string, ZipEntry>();
  for (const entry of directory) {
    if (entry.name.endsWith('/')) continue;
    if (entries.has(entry.name)) throw fail(`entry ${entry.name} appears twice`);
    entries.set(entry.name, entry);
  }
  return {
    names: [...entries.keys()],
    async read(name, maxBytes = defaultMaxEntryBytes) {
      const entry = entries.get(name);
      if (!entry) throw fail(`no entry ${name}`);
      if (entry.size > maxBytes || entry.compressedSize > maxBytes) throw fail(`entry ${name} is larger than ${maxBytes} bytes`);
      try {
        const chunks: Buffer[] = [];
        for await (const chunk of await openZipEntry(file, entry)) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      } catch (error) {
        throw fail((error as Error).message, error);
      }
    },
  };
}

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Dispatcher } from 'undici';
import { verifyingStream } from '../../../oci/verify.js';
import { xzDecompress } from '../xz.js';
import { AptError } from './errors.js';
import { fetchWithRetries } from './http.js';
import type { Release } from './release.js';

/** The fields of a Packages stanza the planner and executor use; the rest is not kept. */
const keptFields = new Set(['package', 'version', 'architecture', 'multi-arch', 'filename', 'size', 'sha256', 'provides', 'depends', 'pre-depends', 'breaks', 'conflicts', 'essential']);

export type IndexRecord = readonly (readonly [string, string])[];

/**
 * One `<component>/binary-<arch>/Packages` index: taken from the cache by the
 * SHA256 InRelease lists for it (a hit downloads nothing), else downloaded
 * (by-hash when the archive offers it), verified against InRelease, then
 * decompressed and parsed; only the fields we use are cached.
 */
export async function loadPackagesIndex(args: {
  release: Release; component: string; architecture: string; dispatcher: Dispatcher; cacheDir: string;
  stats: { bytesDownloaded: number; indexCacheHits: number; indexFetches: number };
}): Promise<IndexRecord[] | undefined> {
  const { release, component, architecture } = args;
  const dir = `${component}/binary-${architecture}`;
  const file = ['Packages.xz', 'Packages.gz', 'Packages'].map((n) => release.files.get(`${dir}/${n}`)).find(Boolean);
  if (!file) return undefined;
  const cachePath = join(args.cacheDir, 'packages', `${file.sha256}.json`);
  const cached = await readFile(cachePath, 'utf8').catch(() => undefined);
  if (cached) {
    args.stats.indexCacheHits++;
    return JSON.parse(cached) as IndexRecord[];
  }

  await mkdir(join(args.cacheDir, 'packages'), { recursive: true });
  const download = `${cachePath}.${process.pid}.download`;
  try {
    const urls = [
      ...(release.acquireByHash ? [`${release.distUrl}/${dir}/by-hash/SHA256/${file.sha256}`] : []),
      `${release.distUrl}/${file.path}`,
    ];
    let fetched = false;
    for (const url of urls) {
      const res = await fetchWithRetries(args.dispatcher, url);
      if (res.status === 404 && url !== urls[urls.length - 1]) { await res.body.dump(); continue; }
      if (res.status !== 200) { await res.body.dump(); throw new AptError('INDEX_MISSING', `${url}: HTTP ${res.status}`); }
      await pipeline(
        res.body,
        verifyingStream({ digest: `sha256:${file.sha256}`, size: file.size }, (_code, message) => new AptError('INDEX_HASH_MISMATCH', `${url} does not match its InRelease checksum: ${message}`)),
        createWriteStream(download),
      );
      args.stats.bytesDownloaded += file.size;
      args.stats.indexFetches++;
      fetched = true;
      break;
    }
    if (!fetched) throw new AptError('INDEX_MISSING', `${release.distUrl}/${file.path}: not available`);

    const records = await parsePackages(decompress(file.path, createReadStream(download)));
    await writeFile(`${cachePath}.tmp`, JSON.stringify(records));
    await rename(`${cachePath}.tmp`, cachePath);
    return records;
  } finally {
    await rm(download, { force: true });
  }
}

function decompress(path: string, input: Readable): Readable {
  if (path.endsWith('.xz')) return xzDecompress(input);
  if (path.endsWith('.gz')) return input.pipe(createGunzip());
  return input;
}

/** Streams a Packages file, keeping only the fields we use; memory is the result, not the file. */
async function parsePackages(stream: Readable): Promise<IndexRecord[]> {
  const out: IndexRecord[] = [];
  let current: [string, string][] = [];
  let keep = false;
  let partial = '';
  const line = (l: string) => {
    if (l === '') {
      if (current.length > 0) out.push(current);
      current = [];
      keep = false;
      return;
    }
    if (l.startsWith(' ') || l.startsWith('\t')) {
      if (keep) current[current.length - 1]![1] += `\n${l}`;
      return;
    }
    const colon = l.indexOf(':');
    if (colon <= 0) return;
    const name = l.slice(0, colon);
    keep = keptFields.has(name.toLowerCase());
    if (keep) current.push([name, l.slice(colon + 1).trimStart()]);
  };
  for await (const chunk of stream) {
    const text = partial + (chunk as Buffer).toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) line(l);
  }
  if (partial) line(partial);
  line('');
  return out;
}

import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import type { Dispatcher } from 'undici';
import type { Logger } from '../../../lib/log.js';
import { field, parseParagraphs } from '../control.js';
import { AptError } from './errors.js';
import { fetchWithRetries } from './http.js';
import type { AptSource } from './sources.js';

export interface ReleaseFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface Release {
  readonly origin?: string;
  readonly label?: string;
  readonly suite?: string;
  readonly codename?: string;
  readonly architectures: readonly string[];
  readonly notAutomatic: boolean;
  readonly butAutomaticUpgrades: boolean;
  readonly acquireByHash: boolean;
  /** `No-Support-for-Architecture-all: Packages`: arch:all packages are in every binary-<arch> index. */
  readonly allInArchIndexes: boolean;
  readonly files: ReadonlyMap<string, ReleaseFile>;
  readonly distUrl: string;
}

/**
 * Fetches `dists/<suite>/InRelease` (conditional GET against our cache),
 * verifies its OpenPGP signature with the source's keyring and its
 * Valid-Until, and parses the signed text — never the unsigned bytes.
 */
export async function fetchRelease(args: {
  source: AptSource; keys: readonly openpgp.PublicKey[]; dispatcher: Dispatcher; cacheDir: string; logger: Logger; now: Date;
  stats: { bytesDownloaded: number; indexCacheHits: number; indexFetches: number };
  /** For a mirror with credentials (`source.uri` is then the mirror's). */
  authorization?: string;
}): Promise<Release> {
  const { source } = args;
  const distUrl = `${source.uri}/dists/${source.suite}`;
  const url = `${distUrl}/InRelease`;
  // Keyed by where it was fetched from: two mirrors' copies (and their validators) never mix.
  const cacheBase = join(args.cacheDir, 'inrelease', createHash('sha256').update(url).digest('hex').slice(0, 32));
  const cached = await readFile(cacheBase).catch(() => undefined);
  const meta = cached ? JSON.parse(await readFile(`${cacheBase}.json`, 'utf8').catch(() => '{}')) as { etag?: string; lastModified?: string } : {};
  const headers: Record<string, string> = args.authorization ? { authorization: args.authorization } : {};
  if (cached && meta.etag) headers['if-none-match'] = meta.etag;
  if (cached && meta.lastModified) headers['if-modified-since'] = meta.lastModified;

  const res = await fetchWithRetries(args.dispatcher, url, headers);
  let text: string;
  if (res.status === 304 && cached) {
    await res.body.dump();
    text = cached.toString('utf8');
    args.stats.indexCacheHits++;
  } else if (res.status === 200) {
    const bytes = Buffer.from(await res.body.arrayBuffer());
    args.stats.bytesDownloaded += bytes.length;
    args.stats.indexFetches++;
    text = bytes.toString('utf8');
    const verifiedFirst = await verifySigned(text, args.keys, url); // never cache what does not verify
    await mkdir(args.cacheDir + '/inrelease', { recursive: true });
    // Unique temp names: concurrent jobs may refresh the same InRelease at once.
    const partial = `${cacheBase}.${randomUUID()}`;
    await writeFile(`${partial}.json`, JSON.stringify({ etag: header(res.headers.etag), lastModified: header(res.headers['last-modified']) }));
    await writeFile(partial, bytes);
    await rename(`${partial}.json`, `${cacheBase}.json`);
    await rename(partial, cacheBase);
    return parseRelease(verifiedFirst, distUrl, url, args.now);
  } else {
    await res.body.dump();
    const hint = res.status === 401 || res.status === 403 ? (args.authorization ? ': the credentials were refused' : ': credentials are needed') : '';
    throw new AptError('RELEASE_INVALID', `${url}: HTTP ${res.status}${hint} (from ${source.origin})`);
  }
  return parseRelease(await verifySigned(text, args.keys, url), distUrl, url, args.now);
}

async function verifySigned(text: string, keys: readonly openpgp.PublicKey[], url: string): Promise<string> {
  let message: openpgp.CleartextMessage;
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: text });
  } catch (error) {
    throw new AptError('RELEASE_SIGNATURE_INVALID', `${url} is not a signed InRelease file: ${(error as Error).message}`, { cause: error });
  }
  const result = await openpgp.verify({ message, verificationKeys: [...keys] });
  for (const signature of result.signatures) {
    try {
      if (await signature.verified) return message.getText();
    } catch { /* a signature by a key we do not trust: try the next */ }
  }
  throw new AptError('RELEASE_SIGNATURE_INVALID', `${url}: no valid signature from a key in the image's keyring`);
}

function parseRelease(text: string, distUrl: string, url: string, now: Date): Release {
  const p = parseParagraphs(text)[0];
  if (!p) throw new AptError('RELEASE_INVALID', `${url}: empty Release`);
  const validUntil = field(p, 'Valid-Until');
  if (validUntil && Date.parse(validUntil) < now.getTime()) {
    throw new AptError('RELEASE_EXPIRED', `${url} expired on ${validUntil}: the mirror is stale or replayed`);
  }
  const files = new Map<string, ReleaseFile>();
  for (const line of (field(p, 'SHA256') ?? '').split('\n')) {
    const [sha256, size, path] = line.trim().split(/\s+/);
    if (sha256 && size && path) files.set(path, { path, size: Number(size), sha256 });
  }
  if (files.size === 0) throw new AptError('RELEASE_INVALID', `${url} lists no SHA256 checksums`);
  const yes = (name: string) => (field(p, name) ?? '').trim().toLowerCase() === 'yes';
  const opt = (name: string) => field(p, name)?.trim();
  return {
    ...(opt('Origin') ? { origin: opt('Origin')! } : {}),
    ...(opt('Label') ? { label: opt('Label')! } : {}),
    ...(opt('Suite') ? { suite: opt('Suite')! } : {}),
    ...(opt('Codename') ? { codename: opt('Codename')! } : {}),
    architectures: (field(p, 'Architectures') ?? '').split(/\s+/).filter(Boolean),
    notAutomatic: yes('NotAutomatic'),
    butAutomaticUpgrades: yes('ButAutomaticUpgrades'),
    acquireByHash: yes('Acquire-By-Hash'),
    allInArchIndexes: (field(p, 'No-Support-for-Architecture-all') ?? '').trim() === 'Packages',
    files,
    distUrl,
  };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

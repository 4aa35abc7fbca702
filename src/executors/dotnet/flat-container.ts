import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { indexAuthorization, type PackageIndex } from '../../plan/library-index.js';
import { DotnetError } from './errors.js';
import { flatContainerPath } from './nuspec.js';

/** A downloaded .nupkg whose SHA-512 is the one the source published. */
export interface VerifiedNupkg {
  readonly file: string;
  /** Base64, as `.nupkg.sha512` files and deps.json carry it. */
  readonly sha512: string;
  readonly bytes: number;
}

const maxNupkgBytes = 1024 * 2 ** 20;
const maxRedirects = 5;

/**
 * Downloads `<id>.<version>.nupkg` from a NuGet flat container into `dir`,
 * hashing it as it streams, and keeps it only if its SHA-512 is the one the
 * source's `<id>.<version>.nupkg.sha512` names (folder feeds and mirrors of
 * a packages folder publish it; nuget.org's flat container does not, and
 * nothing unverified is installed: that is NUPKG_UNVERIFIABLE).
 */
export async function downloadNupkg(args: { index: PackageIndex; name: string; version: string; dispatcher: Dispatcher; dir: string }): Promise<VerifiedNupkg> {
  const { id, version, stem } = flatContainerPath(args.name, args.version);
  const base = args.index.url.replace(/\/+$/, '');
  const hashUrl = `${base}/${stem}.nupkg.sha512`;
  const hashResponse = await get(args.index, hashUrl, args.dispatcher, 30_000);
  const url = `${base}/${stem}.nupkg`;
  if (!hashResponse) {
    // Tell a package that is not there from one that is there unverifiable.
    const probe = await get(args.index, url, args.dispatcher, 30_000);
    if (!probe) throw new DotnetError('NUPKG_NOT_FOUND', `${shown(url)}: ${args.name} ${args.version} is not published there (HTTP 404)`);
    await probe.body.dump();
    throw new DotnetError('NUPKG_UNVERIFIABLE', `${shown(base)} publishes no ${id}.${version}.nupkg.sha512: patchd does not install a package it cannot verify`);
  }
  const expected = (await readBounded(hashResponse, hashUrl, 1024)).toString('utf8').trim();
  const digest = Buffer.from(expected, 'base64');
  if (digest.length !== 64 || digest.toString('base64') !== expected) throw new DotnetError('NUPKG_INVALID', `${shown(hashUrl)} is not a base64 SHA-512`);

  const response = await get(args.index, url, args.dispatcher, 300_000);
  if (!response) throw new DotnetError('NUPKG_NOT_FOUND', `${shown(url)}: ${args.name} ${args.version} is not published there (HTTP 404)`);
  const file = join(args.dir, `${id}.${version}.nupkg`);
  const hash = createHash('sha512');
  let bytes = 0;
  try {
    await pipeline(response.body, new Transform({
      transform(chunk: Buffer, _e, cb) {
        bytes += chunk.length;
        if (bytes > maxNupkgBytes) { cb(new DotnetError('NUPKG_INVALID', `${shown(url)} is larger than ${maxNupkgBytes} bytes`)); return; }
        hash.update(chunk);
        cb(null, chunk);
      },
    }), createWriteStream(file, { mode: 0o600 }));
  } catch (error) {
    await rm(file, { force: true });
    if (error instanceof DotnetError) throw error;
    throw new DotnetError('NUGET_UNAVAILABLE', `${shown(url)}: ${(error as Error).message}`, { cause: error });
  }
  const actual = hash.digest('base64');
  if (actual !== expected) {
    await rm(file, { force: true });
    throw new DotnetError('NUPKG_HASH_MISMATCH', `${shown(url)}: SHA-512 ${actual}, the source's .nupkg.sha512 says ${expected}`);
  }
  return { file, sha512: actual, bytes };
}

/** GET with redirects followed by hand, credentials only to the index's own origin; undefined for 404/410. */
async function get(index: PackageIndex, url: string, dispatcher: Dispatcher, bodyTimeout: number): Promise<Dispatcher.ResponseData | undefined> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const authorization = sameOrigin(current, index.url) ? indexAuthorization(index) : undefined;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(current, { method: 'GET', dispatcher, headersTimeout: 30_000, bodyTimeout, headers: { 'user-agent': 'patchd', ...(authorization ? { authorization } : {}) } });
    } catch (error) {
      throw new DotnetError('NUGET_UNAVAILABLE', `${shown(current)}: ${(error as Error).message}`, { cause: error });
    }
    const status = response.statusCode;
    const location = response.headers['location'];
    if (status >= 300 && status < 400 && typeof location === 'string' && hop < maxRedirects) {
      await response.body.dump();
      try { current = new URL(location, current).toString(); } catch { throw new DotnetError('NUPKG_INVALID', `${shown(current)}: redirect to an unparseable location`); }
      continue;
    }
    if (status === 200) return response;
    await response.body.dump();
    if (status === 404 || status === 410) return undefined;
    if (status === 401 || status === 403) throw new DotnetError('NUPKG_NOT_FOUND', `${shown(current)}: access denied (HTTP ${status}); check the NuGet source's credentials`);
    if (status === 429 || status >= 500) throw new DotnetError('NUGET_UNAVAILABLE', `${shown(current)}: HTTP ${status}`);
    throw new DotnetError('NUPKG_NOT_FOUND', `${shown(current)}: HTTP ${status}`);
  }
}

async function readBounded(response: Dispatcher.ResponseData, url: string, max: number): Promise<Buffer> {
  const length = Number(response.headers['content-length'] ?? 0);
  if (length > max) { await response.body.dump(); throw new DotnetError('NUPKG_INVALID', `${shown(url)}: answer of ${length} bytes is too large`); }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) { response.body.destroy(); throw new DotnetError('NUPKG_INVALID', `${shown(url)}: answer larger than ${max} bytes`); }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  } catch (error) {
    if (error instanceof DotnetError) throw error;
    throw new DotnetError('NUGET_UNAVAILABLE', `${shown(url)}: ${(error as Error).message}`, { cause: error });
  }
}

function sameOrigin(a: string, b: string): boolean {
  try { return new URL(a).origin === new URL(b).origin; } catch { return false; }
}

/** URLs in messages never carry userinfo. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch { return '<unparseable URL>'; }
}

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { readAllBytes } from '../../lib/streams.js';
import { indexAuthorization, type PackageIndex } from '../../plan/library-index.js';
import { normalisePythonName } from '../../scan/inventory/readers/python.js';
import { parsePep440 } from '../../versions/pep440.js';
import { PythonError } from './errors.js';
import { parseWheelName, type ReleaseFile } from './tags.js';
import { redactUrl } from '../../lib/log.js';

/** What PyPI-compatible indexes say about one release: its files, each with the sha256 the download is checked against. */
export interface Release {
  readonly files: readonly ReleaseFile[];
  /** The URL that answered (for messages; never carries credentials). */
  readonly source: string;
  readonly bytes: number;
}

const maxIndexBytes = 64 * 2 ** 20;
const maxWheelBytes = 4 * 2 ** 30;
const maxRedirects = 5;

/** A project name as indexes accept it (PEP 508 names). */
export function validProjectName(name: string): boolean {
  return /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name) && name.length <= 200;
}

export function validVersion(version: string): boolean {
  try { parsePep440(version); } catch { return false; }
  return /^[A-Za-z0-9.+!_-]+$/.test(version);
}

/** The PEP 503 simple index for an index given by its JSON API base (`https://pypi.org/pypi` → `https://pypi.org/simple`). */
export function simpleIndexUrl(index: PackageIndex): string {
  const url = index.url.replace(/\/+$/, '');
  if (/\/simple$/.test(url)) return `${url}/`;
  if (/\/pypi$/.test(url)) return `${url.slice(0, -'/pypi'.length)}/simple/`;
  return `${url}/simple/`;
}

/**
 * The files of `name==version`: PyPI's JSON API (`<base>/<name>/<version>/json`,
 * falling back to the project's `<base>/<name>/json` releases when a mirror
 * lacks per-version pages), or the simple API's JSON form (PEP 691) when the
 * index is given as a `.../simple` URL. File URLs are resolved against the
 * page that named them (mirrors answer with relative ones).
 */
export async function releaseFiles(index: PackageIndex, name: string, version: string, dispatcher: Dispatcher): Promise<Release> {
  if (!validProjectName(name) || !validVersion(version)) throw new PythonError('INDEX_INVALID', `refusing to ask an index for ${JSON.stringify(name)} ${JSON.stringify(version)}`);
  const base = index.url.replace(/\/+$/, '');
  if (/\/simple$/.test(base)) return simpleRelease(index, name, version, dispatcher);
  let bytes = 0;
  const perVersion = `${base}/${encodeURIComponent(name)}/${encodeURIComponent(version)}/json`;
  const page = await getJson(index, perVersion, 'application/json', dispatcher);
  if (page) {
    bytes += page.bytes;
    const urls = (page.json as { urls?: unknown }).urls;
    if (Array.isArray(urls) && urls.length > 0) return { files: urls.map((f) => jsonApiFile(f, page.url)), source: perVersion, bytes };
  }
  const projectUrl = `${base}/${encodeURIComponent(name)}/json`;
  const project = await getJson(index, projectUrl, 'application/json', dispatcher);
  if (!project) throw new PythonError('VERSION_NOT_PUBLISHED', `${name} is not published on ${base}`);
  bytes += project.bytes;
  const releases = (project.json as { releases?: Record<string, unknown> }).releases ?? {};
  const key = Object.keys(releases).find((v) => v === version) ?? Object.keys(releases).find((v) => samePep440(v, version));
  const files = key === undefined ? undefined : releases[key];
  if (!Array.isArray(files) || files.length === 0) throw new PythonError('VERSION_NOT_PUBLISHED', `${name} ${version} is not published on ${base} (no files)`);
  return { files: files.map((f) => jsonApiFile(f, project.url)), source: projectUrl, bytes };
}

async function simpleRelease(index: PackageIndex, name: string, version: string, dispatcher: Dispatcher): Promise<Release> {
  const url = `${index.url.replace(/\/+$/, '')}/${normalisePythonName(name)}/`;
  const page = await getJson(index, url, 'application/vnd.pypi.simple.v1+json', dispatcher);
  if (!page) throw new PythonError('VERSION_NOT_PUBLISHED', `${name} is not published on ${url}`);
  const all = (page.json as { files?: unknown }).files;
  if (!Array.isArray(all)) throw new PythonError('INDEX_INVALID', `${url} did not answer PEP 691 JSON (no files)`);
  const prefix = normalisePythonName(name).replace(/-/g, '_');
  const files = all.filter((f: { filename?: unknown }) => typeof f.filename === 'string' && fileVersion(f.filename, prefix) !== undefined && samePep440(fileVersion(f.filename, prefix)!, version))
    .map((f: Record<string, unknown>) => {
      const hashes = (f['hashes'] ?? {}) as Record<string, unknown>;
      const yanked = f['yanked'];
      const requires = f['requires-python'];
      return {
        filename: String(f['filename']), url: resolve(String(f['url'] ?? ''), page.url),
        ...(typeof hashes['sha256'] === 'string' ? { sha256: hashes['sha256'] } : {}),
        ...(typeof requires === 'string' && requires ? { requiresPython: requires } : {}),
        yanked: yanked === true || typeof yanked === 'string',
        ...(typeof f['size'] === 'number' ? { size: f['size'] } : {}),
      };
    });
  if (files.length === 0) throw new PythonError('VERSION_NOT_PUBLISHED', `${name} ${version} is not published on ${url}`);
  return { files, source: url, bytes: page.bytes };
}

/** The version in a wheel or sdist file name of the project whose normalised, underscored name is `prefix`. */
function fileVersion(filename: string, prefix: string): string | undefined {
  const key = (n: string) => n.toLowerCase().replace(/[-_.]+/g, '_');
  const wheel = parseWheelName(filename);
  if (wheel) return key(wheel.distribution) === prefix ? wheel.version : undefined;
  const m = /^(.+)-([^-]+)\.(?:tar\.gz|zip|tar\.bz2|tar\.xz|tgz)$/i.exec(filename);
  return m && key(m[1]!) === prefix ? m[2] : undefined;
}

function jsonApiFile(raw: unknown, page: string): ReleaseFile {
  const f = (raw ?? {}) as Record<string, unknown>;
  const digests = (f['digests'] ?? {}) as Record<string, unknown>;
  if (typeof f['filename'] !== 'string' || typeof f['url'] !== 'string') throw new PythonError('INDEX_INVALID', `${page}: a release file without filename or url`);
  const requires = f['requires_python'];
  return {
    filename: f['filename'], url: resolve(f['url'], page),
    ...(typeof digests['sha256'] === 'string' ? { sha256: digests['sha256'] } : {}),
    ...(typeof requires === 'string' && requires ? { requiresPython: requires } : {}),
    yanked: f['yanked'] === true,
    ...(typeof f['size'] === 'number' ? { size: f['size'] } : {}),
  };
}

function resolve(url: string, page: string): string {
  try { return new URL(url, page).toString(); } catch { throw new PythonError('INDEX_INVALID', `${page}: file URL ${JSON.stringify(url)} does not parse`); }
}

function samePep440(a: string, b: string): boolean {
  try {
    const x = parsePep440(a);
    const y = parsePep440(b);
    return JSON.stringify(x) === JSON.stringify(y);
  } catch { return false; }
}

/** Credentials go only to the index's own origin, never to the file host it redirects to. */
function headersFor(index: PackageIndex, url: string, accept: string): Record<string, string> {
  const headers: Record<string, string> = { accept, 'user-agent': 'patchd' };
  const auth = indexAuthorization(index);
  if (auth && sameOrigin(url, index.url)) headers['authorization'] = auth;
  return headers;
}

function sameOrigin(a: string, b: string): boolean {
  try { return new URL(a).origin === new URL(b).origin; } catch { return false; }
}

/** GET with redirects followed (credentials dropped across origins); the response, or undefined for 404/410. */
async function get(index: PackageIndex, url: string, accept: string, dispatcher: Dispatcher, bodyTimeout: number): Promise<{ response: Dispatcher.ResponseData; url: string } | undefined> {
  let current = url;
  for (let hop = 0; ; hop++) {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(current, { method: 'GET', headers: headersFor(index, current, accept), dispatcher, headersTimeout: 30_000, bodyTimeout });
    } catch (error) {
      throw new PythonError('INDEX_UNREACHABLE', `${redactUrl(current)}: ${(error as Error).message}`, { cause: error });
    }
    const status = response.statusCode;
    if (status >= 300 && status < 400 && response.headers['location'] && hop < maxRedirects) {
      await response.body.dump();
      current = resolve(String(response.headers['location']), current);
      continue;
    }
    if (status === 200) return { response, url: current };
    await response.body.dump();
    if (status === 404 || status === 410) return undefined;
    if (status === 401 || status === 403) throw new PythonError('INDEX_INVALID', `${redactUrl(current)}: access denied (HTTP ${status}); check the index credentials`);
    throw new PythonError('INDEX_UNREACHABLE', `${redactUrl(current)}: HTTP ${status}`, status >= 400 && status < 500 && status !== 429 ? { kind: 'upstream' } : {});
  }
}

async function getJson(index: PackageIndex, url: string, accept: string, dispatcher: Dispatcher): Promise<{ json: unknown; url: string; bytes: number } | undefined> {
  const got = await get(index, url, accept, dispatcher, 60_000);
  if (!got) return undefined;
  const length = Number(got.response.headers['content-length'] ?? 0);
  if (length > maxIndexBytes) { await got.response.body.dump(); throw new PythonError('INDEX_INVALID', `${redactUrl(got.url)}: answer of ${length} bytes is too large`); }
  let body: Buffer;
  try { body = await readAllBytes(got.response.body); } catch (error) { throw new PythonError('INDEX_UNREACHABLE', `${redactUrl(got.url)}: ${(error as Error).message}`, { cause: error }); }
  try { return { json: JSON.parse(body.toString('utf8')), url: got.url, bytes: body.length }; } catch { throw new PythonError('INDEX_INVALID', `${redactUrl(got.url)} did not answer JSON`); }
}

/**
 * Streams `file` to `dest`, hashing as it goes; the download is accepted
 * only if its sha256 is the one the index published for it.
 */
export async function downloadVerified(index: PackageIndex, file: ReleaseFile, dest: string, dispatcher: Dispatcher): Promise<number> {
  if (!file.sha256 || !/^[0-9a-f]{64}$/i.test(file.sha256)) throw new PythonError('INDEX_INVALID', `the index gives no sha256 for ${file.filename}: refusing an unverifiable download`);
  const got = await get(index, file.url, '*/*', dispatcher, 300_000);
  if (!got) throw new PythonError('VERSION_NOT_PUBLISHED', `${file.filename}: ${redactUrl(file.url)} is gone (HTTP 404)`);
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(got.response.body, new Transform({
      transform(chunk: Buffer, _e, cb) {
        size += chunk.length;
        if (size > maxWheelBytes) { cb(new PythonError('WHEEL_INVALID', `${file.filename} is larger than ${maxWheelBytes} bytes`)); return; }
        hash.update(chunk);
        cb(null, chunk);
      },
    }), createWriteStream(dest));
  } catch (error) {
    if (error instanceof PythonError) throw error;
    throw new PythonError('DOWNLOAD_FAILED', `${file.filename}: ${(error as Error).message}`, { cause: error });
  }
  const digest = hash.digest('hex');
  if (digest !== file.sha256.toLowerCase()) throw new PythonError('DIGEST_MISMATCH', `${file.filename}: sha256 ${digest}, the index says ${file.sha256}`);
  return size;
}


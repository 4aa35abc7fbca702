import { request, type Dispatcher } from 'undici';
import { codedError, type ErrorCodes } from '../lib/errors.js';
import { readAllBytes } from '../lib/streams.js';
import { compareVersions, type Ecosystem } from '../versions/index.js';

/** Package indexes (PyPI, npm, the Go proxy, NuGet) asked which versions exist. */
export const libraryIndexCodes = {
  INDEX_UNREACHABLE: 'unavailable',
  INDEX_INVALID: 'upstream',
  INDEX_UNSUPPORTED: 'unsupported',
  PACKAGE_NOT_FOUND: 'upstream',
} as const satisfies ErrorCodes;
export type LibraryIndexCode = keyof typeof libraryIndexCodes;

export class LibraryIndexError extends codedError(libraryIndexCodes) {}

/** Which versions a package source publishes, so a plan never names one that does not exist. */
export interface LibraryIndex {
  /** Published versions, or a LibraryIndexError when the source cannot be asked. */
  versions(ecosystem: Ecosystem, name: string): Promise<PublishedVersions>;
}

export interface PublishedVersions {
  readonly versions: readonly string[];
  /** What the source calls latest (PyPI's info.version, npm's dist-tags.latest), else the highest stable version. */
  readonly latest?: string;
  readonly source: string;
}

export interface LibraryIndexUrls {
  readonly pypi: string;
  readonly npm: string;
  readonly goProxy: string;
  readonly nuget: string;
}

/**
 * Where one ecosystem's packages come from: the public index, a mirror, or a
 * private index with credentials (per registry policy). Used to check that a
 * fixed version exists (plan) and to download it (executors).
 */
export interface PackageIndex {
  readonly url: string;
  /** Basic credentials, or a bearer token (npm's `_authToken`). Never logged. */
  readonly credentials?: { readonly username: string; readonly password: string } | { readonly token: string };
}

export type PackageIndexes = { readonly [K in keyof LibraryIndexUrls]: PackageIndex };

/** The Authorization header value for an index's credentials, if it has any. */
export function indexAuthorization(index: PackageIndex): string | undefined {
  const c = index.credentials;
  if (!c) return undefined;
  return 'token' in c ? `Bearer ${c.token}` : `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

export const defaultLibraryIndexUrls: LibraryIndexUrls = {
  pypi: 'https://pypi.org/pypi',
  npm: 'https://registry.npmjs.org',
  goProxy: 'https://proxy.golang.org',
  nuget: 'https://api.nuget.org/v3-flatcontainer',
};

const maxResponseBytes = 64 * 2 ** 20;

/**
 * PyPI's JSON API, the npm registry, a Go module proxy and NuGet's flat
 * container; answers are cached per process. `indexes` (a mirror or a private
 * index per ecosystem, with credentials) win over `urls`; credentials are sent
 * only to their index's origin and never appear in an error.
 */
export function httpLibraryIndex(options: { dispatcher?: Dispatcher; urls?: Partial<LibraryIndexUrls>; indexes?: Partial<PackageIndexes> } = {}): LibraryIndex {
  const indexes: PackageIndexes = {
    pypi: options.indexes?.pypi ?? { url: options.urls?.pypi ?? defaultLibraryIndexUrls.pypi },
    npm: options.indexes?.npm ?? { url: options.urls?.npm ?? defaultLibraryIndexUrls.npm },
    goProxy: options.indexes?.goProxy ?? { url: options.urls?.goProxy ?? defaultLibraryIndexUrls.goProxy },
    nuget: options.indexes?.nuget ?? { url: options.urls?.nuget ?? defaultLibraryIndexUrls.nuget },
  };
  const urls: LibraryIndexUrls = { pypi: trimSlash(indexes.pypi.url), npm: trimSlash(indexes.npm.url), goProxy: trimSlash(indexes.goProxy.url), nuget: trimSlash(indexes.nuget.url) };
  const cache = new Map<string, Promise<PublishedVersions>>();
  const getJson = async (index: PackageIndex, url: string, accept = 'application/json'): Promise<unknown> => {
    const text = await getText(index, url, accept);
    try { return JSON.parse(text); } catch { throw new LibraryIndexError('INDEX_INVALID', `${shown(url)} did not answer JSON`); }
  };
  const getText = async (index: PackageIndex, url: string, accept: string): Promise<string> => {
    const authorization = sameOrigin(url, index.url) ? indexAuthorization(index) : undefined;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        method: 'GET', headers: { accept, 'user-agent': 'patchd', ...(authorization ? { authorization } : {}) },
        ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}), headersTimeout: 30_000, bodyTimeout: 60_000,
      });
    } catch (error) {
      throw new LibraryIndexError('INDEX_UNREACHABLE', `${shown(url)}: ${(error as Error).message}`);
    }
    if (response.statusCode === 404 || response.statusCode === 410) {
      await response.body.dump();
      throw new LibraryIndexError('PACKAGE_NOT_FOUND', `${shown(url)}: not published there (HTTP ${response.statusCode})`);
    }
    if (response.statusCode === 401 || response.statusCode === 403) {
      await response.body.dump();
      throw new LibraryIndexError('INDEX_UNREACHABLE', `${shown(url)}: HTTP ${response.statusCode} (${authorization ? 'the credentials were refused' : 'the index wants credentials'})`, { kind: 'upstream' });
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new LibraryIndexError('INDEX_UNREACHABLE', `${shown(url)}: HTTP ${response.statusCode}`);
    }
    const length = Number(response.headers['content-length'] ?? 0);
    if (length > maxResponseBytes) { await response.body.dump(); throw new LibraryIndexError('INDEX_INVALID', `${shown(url)}: answer of ${length} bytes is too large`); }
    return (await readAllBytes(response.body)).toString('utf8');
  };

  const fetchVersions = async (ecosystem: Ecosystem, name: string): Promise<PublishedVersions> => {
    switch (ecosystem) {
      case 'pypi': {
        if (/\/simple$/.test(urls.pypi)) return simpleVersions(name);
        const url = `${urls.pypi}/${encodeURIComponent(name)}/json`;
        const json = (await getJson(indexes.pypi, url)) as { info?: { version?: string }; releases?: Record<string, { yanked?: boolean }[]> };
        const versions = Object.entries(json.releases ?? {}).filter(([, files]) => files.length === 0 || files.some((f) => !f.yanked)).map(([v]) => v);
        return { versions, ...(json.info?.version ? { latest: json.info.version } : {}), source: url };
      }
      case 'npm': {
        const url = `${urls.npm}/${name.startsWith('@') ? `@${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name)}`;
        const json = (await getJson(indexes.npm, url, 'application/vnd.npm.install-v1+json')) as { versions?: Record<string, unknown>; 'dist-tags'?: { latest?: string } };
        const latest = json['dist-tags']?.latest;
        return { versions: Object.keys(json.versions ?? {}), ...(latest ? { latest } : {}), source: url };
      }
      case 'go': {
        // Module paths are case-encoded on the proxy: 'A' becomes '!a'.
        const escaped = name.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
        const url = `${urls.goProxy}/${escaped}/@v/list`;
        const versions = (await getText(indexes.goProxy, url, 'text/plain')).split('\n').map((l) => l.trim()).filter(Boolean);
        return withHighest(ecosystem, { versions, source: url });
      }
      case 'nuget': {
        const url = `${urls.nuget}/${encodeURIComponent(name.toLowerCase())}/index.json`;
        const json = (await getJson(indexes.nuget, url)) as { versions?: string[] };
        return withHighest(ecosystem, { versions: json.versions ?? [], source: url });
      }
      default:
        throw new LibraryIndexError('INDEX_UNSUPPORTED', `no library index for ${ecosystem} packages`);
    }
  };

  /** An index given as a `.../simple` URL: the simple API's JSON form (PEP 691), versions from PEP 700's list or the file names. */
  const simpleVersions = async (name: string): Promise<PublishedVersions> => {
    const project = name.toLowerCase().replace(/[-_.]+/g, '-');
    const url = `${urls.pypi}/${encodeURIComponent(project)}/`;
    const json = (await getJson(indexes.pypi, url, 'application/vnd.pypi.simple.v1+json')) as { versions?: string[]; files?: { filename?: string; yanked?: unknown }[] };
    const live = new Set<string>();
    const all = new Set<string>(json.versions ?? []);
    for (const file of json.files ?? []) {
      const version = fileVersion(file.filename ?? '', project);
      if (!version) continue;
      all.add(version);
      if (!file.yanked) live.add(version);
    }
    // A version whose every file is yanked is not offered (as pip does without ==).
    const versions = [...all].filter((v) => live.has(v) || !(json.files ?? []).some((f) => fileVersion(f.filename ?? '', project) === v));
    return withHighest('pypi', { versions, source: url });
  };

  return {
    versions(ecosystem, name) {
      const key = `${ecosystem}\0${name}`;
      let pending = cache.get(key);
      if (!pending) {
        pending = fetchVersions(ecosystem, name);
        cache.set(key, pending);
        pending.catch(() => cache.delete(key));
      }
      return pending;
    },
  };
}

/** The version in a wheel's or sdist's file name ('foo_bar-1.2.3-py3-none-any.whl', 'foo-bar-1.2.3.tar.gz'). */
function fileVersion(filename: string, project: string): string | undefined {
  if (filename.endsWith('.whl')) return filename.split('-')[1];
  const m = /^(.*)\.(tar\.gz|zip|tar\.bz2)$/.exec(filename);
  if (!m) return undefined;
  const stem = m[1]!;
  const normalized = stem.toLowerCase().replace(/[-_.]+/g, '-');
  return normalized.startsWith(`${project}-`) ? stem.slice(stem.length - (normalized.length - project.length - 1)) : undefined;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function sameOrigin(url: string, base: string): boolean {
  try { return new URL(url).origin === new URL(base).origin; } catch { return false; }
}

/** A URL as errors show it: without any user:password@ it may carry. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = ''; u.password = '';
    return u.toString();
  } catch { return url.replace(/\/\/[^/@]*@/, '//'); }
}

function withHighest(ecosystem: Ecosystem, found: { versions: string[]; source: string }): PublishedVersions {
  const stable = found.versions.filter((v) => !/-/.test(v.replace(/\+.*$/, '')));
  const sorted = [...stable].sort((a, b) => { try { return compareVersions(ecosystem, a, b); } catch { return 0; } });
  const latest = sorted[sorted.length - 1];
  return { ...found, ...(latest ? { latest } : {}) };
}

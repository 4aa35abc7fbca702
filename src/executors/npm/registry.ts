import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { readAllBytes } from '../../lib/streams.js';
import { indexAuthorization, type PackageIndex } from '../../plan/library-index.js';
import { NpmError } from './errors.js';
import { expectedIntegrity, IntegrityCheck } from './integrity.js';
import { redactUrl } from '../../lib/log.js';

/** A version's document in the registry's abbreviated metadata (what npm install reads). */
export interface RegistryManifest {
  readonly name: string;
  readonly version: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  readonly bundleDependencies?: unknown;
  readonly bundledDependencies?: unknown;
  readonly bin?: string | Record<string, string>;
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
  readonly deprecated?: string;
  readonly hasInstallScript?: boolean;
  readonly dist: { readonly tarball: string; readonly integrity?: string; readonly shasum?: string };
}

export interface DownloadedTarball {
  readonly path: string;
  /** The SRI string the lockfiles record: the registry's own integrity. */
  readonly integrity: string;
  /** The URL the lockfiles record as `resolved`. */
  readonly resolved: string;
  readonly size: number;
  /** Removes the download. */
  remove(): Promise<void>;
}

const maxPackumentBytes = 128 * 2 ** 20;
const maxTarballBytes = 1024 * 2 ** 20;
const abbreviated = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

/** `@scope/name` as npm puts it in a URL: `@scope%2fname`. */
export function packumentUrl(index: PackageIndex, name: string): string {
  const escaped = name.startsWith('@') ? `@${encodeURIComponent(name.slice(1)).replace(/%2F/g, '%2f')}` : encodeURIComponent(name);
  return `${index.url.replace(/\/+$/, '')}/${escaped}`;
}

/**
 * One version of a package from the registry's abbreviated metadata:
 * NPM_VERSION_NOT_PUBLISHED if the registry does not publish it. Credentials
 * go only to the index's own origin; they never appear in errors.
 */
export async function fetchManifest(options: { index: PackageIndex; dispatcher: Dispatcher; name: string; version: string }): Promise<RegistryManifest> {
  const url = packumentUrl(options.index, options.name);
  const what = `${options.name}@${options.version}`;
  const response = await get(url, options.index, options.dispatcher, abbreviated, what);
  if (response.statusCode === 404 || response.statusCode === 410) {
    await response.body.dump();
    throw new NpmError('NPM_PACKAGE_NOT_FOUND', `${options.name} is not published on ${options.index.url} (HTTP ${response.statusCode})`);
  }
  await expectOk(response, url, what);
  const length = Number(response.headers['content-length'] ?? 0);
  if (length > maxPackumentBytes) {
    await response.body.dump();
    throw new NpmError('NPM_REGISTRY_INVALID', `${url}: packument of ${length} bytes is too large`);
  }
  let packument: { versions?: Record<string, unknown> };
  try {
    packument = JSON.parse((await readAllBytes(response.body)).toString('utf8')) as typeof packument;
  } catch (error) {
    if (error instanceof SyntaxError) throw new NpmError('NPM_REGISTRY_INVALID', `${url} did not answer a JSON packument`);
    throw new NpmError('NPM_REGISTRY_UNREACHABLE', `${url}: ${(error as Error).message}`, { cause: error });
  }
  const doc = packument.versions?.[options.version] as Partial<RegistryManifest> | undefined;
  if (!doc || typeof doc !== 'object') {
    throw new NpmError('NPM_VERSION_NOT_PUBLISHED', `${what}: fixed version ${options.version} is not published on ${options.index.url}`);
  }
  if (typeof doc.dist?.tarball !== 'string' || !/^https?:\/\//.test(doc.dist.tarball)) {
    throw new NpmError('NPM_REGISTRY_INVALID', `${what}: the registry gives no tarball URL`);
  }
  return { ...doc, name: typeof doc.name === 'string' ? doc.name : options.name, version: options.version } as RegistryManifest;
}

/**
 * Streams the version's tarball into `tmpDir`, hashing it on the way; the
 * file exists only if its bytes match the registry's integrity (sha512 SRI,
 * or the legacy sha1 shasum when that is all there is).
 */
export async function downloadTarball(options: { index: PackageIndex; dispatcher: Dispatcher; manifest: RegistryManifest; tmpDir: string }): Promise<DownloadedTarball> {
  const { manifest, index } = options;
  const what = `${manifest.name}@${manifest.version}`;
  const { hash, sri } = expectedIntegrity(manifest.dist, what);
  const url = tarballUrl(manifest.dist.tarball, index);
  const dir = await mkdtemp(join(options.tmpDir, 'npm-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const response = await get(url, index, options.dispatcher, '*/*', what);
    await expectOk(response, url, what);
    const length = Number(response.headers['content-length'] ?? 0);
    if (length > maxTarballBytes) {
      await response.body.dump();
      throw new NpmError('NPM_TARBALL_INVALID', `${what}: tarball of ${length} bytes is too large`);
    }
    const check = new IntegrityCheck(hash, what);
    const path = join(dir, 'package.tgz');
    let received = 0;
    try {
      await pipeline(
        response.body,
        async function* limit(source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            received += chunk.length;
            if (received > maxTarballBytes) throw new NpmError('NPM_TARBALL_INVALID', `${what}: tarball larger than ${maxTarballBytes} bytes`);
            yield chunk;
          }
        },
        check,
        createWriteStream(path),
      );
    } catch (error) {
      if (error instanceof NpmError) throw error;
      throw new NpmError('NPM_REGISTRY_UNREACHABLE', `${what}: download from ${redactUrl(url)} failed: ${(error as Error).message}`, { cause: error });
    }
    return { path, integrity: sri, resolved: manifest.dist.tarball, size: check.size, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

/**
 * npm's `replace-registry-host` default: a tarball the public registry names
 * is fetched from the configured registry (a mirror serves the same paths).
 */
function tarballUrl(tarball: string, index: PackageIndex): string {
  const source = new URL(tarball);
  const configured = new URL(index.url);
  if (source.host === 'registry.npmjs.org' && configured.host !== source.host) {
    const base = configured.pathname.replace(/\/+$/, '');
    return `${configured.origin}${base}${source.pathname}`;
  }
  return tarball;
}

/** GET with redirects followed; Authorization is sent only to the index's origin. */
async function get(url: string, index: PackageIndex, dispatcher: Dispatcher, accept: string, what: string): Promise<Dispatcher.ResponseData> {
  const origin = new URL(index.url).origin;
  const authorization = indexAuthorization(index);
  let current = url;
  for (let hops = 0; hops < 10; hops++) {
    const headers: Record<string, string> = { accept, 'user-agent': 'patchd (npm-compatible)' };
    if (authorization && new URL(current).origin === origin) headers['authorization'] = authorization;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(current, { method: 'GET', headers, dispatcher, headersTimeout: 30_000, bodyTimeout: 120_000 });
    } catch (error) {
      throw new NpmError('NPM_REGISTRY_UNREACHABLE', `${what}: ${redactUrl(current)}: ${(error as Error).message}`, { cause: error });
    }
    if ([301, 302, 303, 307, 308].includes(response.statusCode)) {
      const location = response.headers.location;
      await response.body.dump();
      if (typeof location !== 'string') throw new NpmError('NPM_REGISTRY_INVALID', `${what}: ${redactUrl(current)} redirects nowhere`);
      current = new URL(location, current).toString();
      continue;
    }
    return response;
  }
  throw new NpmError('NPM_REGISTRY_INVALID', `${what}: too many redirects from ${redactUrl(url)}`);
}

async function expectOk(response: Dispatcher.ResponseData, url: string, what: string): Promise<void> {
  if (response.statusCode === 200) return;
  await response.body.dump();
  const status = response.statusCode;
  if (status === 401 || status === 403) throw new NpmError('NPM_REGISTRY_INVALID', `${what}: ${redactUrl(url)} refused access (HTTP ${status}): check the npm index's credentials`);
  if (status === 404 || status === 410) throw new NpmError('NPM_VERSION_NOT_PUBLISHED', `${what}: ${redactUrl(url)} is not there (HTTP ${status})`);
  if (status === 429 || status >= 500) throw new NpmError('NPM_REGISTRY_UNREACHABLE', `${what}: ${redactUrl(url)} answered HTTP ${status}`);
  throw new NpmError('NPM_REGISTRY_INVALID', `${what}: ${redactUrl(url)} answered HTTP ${status}`);
}


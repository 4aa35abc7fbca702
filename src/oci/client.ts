import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from '../lib/log.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { errorFromResponse, OciError } from './errors.js';
import type { Credentials, Keychain } from './keychain.js';
import { manifestMediaTypes } from './media-types.js';
import { formatReference, manifestIdentifier, type Reference } from './reference.js';
import { verifyingStream } from './verify.js';

export interface RegistryClientOptions {
  readonly logger: Logger;
  readonly dispatcher?: Dispatcher;
  readonly keychain?: Keychain;
  /** Default: plain HTTP only for localhost, 127.0.0.0/8 and [::1] (as docker does). */
  readonly plainHttp?: boolean | ((registry: string) => boolean);
  readonly retry?: { readonly attempts?: number; readonly baseDelayMs?: number; readonly maxDelayMs?: number };
  /** When set, uploads go in PATCH chunks of this many bytes; otherwise one monolithic PUT. */
  readonly chunkSize?: number;
  readonly userAgent?: string;
}

export interface ManifestResponse {
  readonly mediaType: string;
  readonly digest: string;
  readonly bytes: Buffer;
}

export interface RegistryClient {
  getManifest(ref: Reference): Promise<ManifestResponse>;
  headManifest(ref: Reference): Promise<{ mediaType: string; digest: string; size: number } | undefined>;
  putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string>;
  openBlob(repo: Reference, desc: { digest: string; size: number }): Promise<Readable>;
  hasBlob(repo: Reference, digest: string): Promise<boolean>;
  pushBlob(repo: Reference, desc: { digest: string; size: number }, open: () => Promise<Readable>, options?: { mountFrom?: string }): Promise<'exists' | 'mounted' | 'uploaded'>;
  listTags(repo: Reference): Promise<string[]>;
}

export const maxManifestBytes = 4 * 1024 * 1024;
const redirectStatuses = new Set([301, 302, 303, 307, 308]);

interface Call {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path below the registry's base URL, or an absolute URL (upload Locations). */
  readonly url: string;
  readonly scopes: readonly string[];
  readonly headers?: Record<string, string>;
  readonly body?: () => Promise<Buffer | Readable | undefined>;
  readonly what: string;
}

type Response = Dispatcher.ResponseData;

/**
 * A distribution-spec v1.1 client on undici. Layers: reference → transport
 * (ping, challenge, token cache, retries, redirects) → operations. Secrets
 * live only in request headers, never in logs or errors.
 */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const dispatcher = options.dispatcher ?? new Agent();
  const logger = options.logger;
  const attempts = options.retry?.attempts ?? 4;
  const baseDelay = options.retry?.baseDelayMs ?? 200;
  const maxDelay = options.retry?.maxDelayMs ?? 5000;
  const userAgent = options.userAgent ?? 'patchd/0.1';
  const tokens = new LRUCache<string, { token: string }>({ max: 500, ttlAutopurge: false });
  const challenges = new Map<string, Promise<Challenge | undefined>>();

  const plain = (registry: string) => {
    if (typeof options.plainHttp === 'function') return options.plainHttp(registry);
    if (options.plainHttp) return true;
    const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  };
  const endpoint = (registry: string) => `${plain(registry) ? 'http' : 'https'}://${registry === 'docker.io' ? 'registry-1.docker.io' : registry}`;
  const credentials = (registry: string) => options.keychain?.resolve(registry) ?? Promise.resolve(undefined);

  /** GET /v2/ without credentials: learns how the registry wants to be spoken to. */
  const probe = (registry: string) => {
    let known = challenges.get(registry);
    if (!known) {
      known = (async () => {
        const res = await withRetries(`ping ${registry}`, () => raw('GET', `${endpoint(registry)}/v2/`, { 'user-agent': userAgent }));
        await res.body.dump();
        if (res.statusCode === 401) return pickChallenge(res.headers['www-authenticate']);
        if (res.statusCode >= 400 && res.statusCode !== 404) throw errorFromResponse(res.statusCode, '', `ping ${registry}`);
        return undefined;
      })();
      known.catch(() => challenges.delete(registry));
      challenges.set(registry, known);
    }
    return known;
  };

  async function authorization(registry: string, challenge: Challenge | undefined, scopes: readonly string[]): Promise<string | undefined> {
    if (!challenge) return undefined;
    const creds = await credentials(registry);
    if (challenge.scheme === 'basic') {
      return creds?.username !== undefined ? `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}` : undefined;
    }
    if (challenge.scheme !== 'bearer') return undefined;
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const scope = [...new Set([...scopes, ...(challenge.params.scope ? [challenge.params.scope] : [])])].sort().join(' ');
    const key = `${registry}|${scope}`;
    const cached = tokens.get(key);
    if (cached) return `Bearer ${cached.token}`;
    const token = await fetchToken(registry, challenge, scope.split(' ').filter(Boolean), creds);
    tokens.set(key, { token: token.token }, { ttl: Math.max(1, token.expiresIn - 5) * 1000 });
    return `Bearer ${token.token}`;
  }

  async function fetchToken(registry: string, challenge: Challenge, scopes: readonly string[], creds: Credentials | undefined) {
    const realm = challenge.params.realm;
    if (!realm) throw new OciError('AUTH_FAILED', `${registry} sent a Bearer challenge without a realm`);
    const url = new URL(realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = { 'user-agent': userAgent };
    let res: Response;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, service: challenge.params.service ?? '', scope: scopes.join(' ') });
      res = await withRetries(`token for ${registry}`, () => raw('POST', realm, { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, form.toString()));
    } else {
      // Harbor answers POST with 405: tokens are fetched with GET and Basic credentials.
      if (creds?.username !== undefined) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      res = await withRetries(`token for ${registry}`, () => raw('GET', url.toString(), headers));
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new OciError('AUTH_FAILED', `token request to ${url.origin}${url.pathname} for ${registry} failed: HTTP ${res.statusCode}`, { status: res.statusCode });
    let json: { token?: string; access_token?: string; expires_in?: number };
    try { json = JSON.parse(text); } catch { throw new OciError('AUTH_FAILED', `token response from ${url.origin} is not JSON`); }
    const token = json.token ?? json.access_token;
    if (!token) throw new OciError('AUTH_FAILED', `token response from ${url.origin} has no token`);
    return { token, expiresIn: typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60 };
  }

  function raw(method: string, url: string, headers: Record<string, string>, body?: Buffer | Readable | string): Promise<Response> {
    return request(url, { method: method as Dispatcher.HttpMethod, headers, dispatcher, ...(body !== undefined ? { body } : {}) }).catch((error: unknown) => {
      throw new OciError('NETWORK', `${method} ${redact(url)}: ${(error as Error).message}`, { cause: error });
    });
  }

  async function withRetries<T extends Response>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let i = 1; ; i++) {
      let res: T | undefined;
      let error: unknown;
      try { res = await attempt(); } catch (e) { error = e; }
      const retryable = error ? error instanceof OciError && error.transient : res!.statusCode === 429 || res!.statusCode >= 500;
      if (!retryable || i >= attempts) {
        if (error) throw error;
        return res!;
      }
      const retryAfter = res ? retryAfterMs(res.headers['retry-after']) : undefined;
      if (res) await res.body.dump();
      const delay = retryAfter ?? Math.min(maxDelay, baseDelay * 2 ** (i - 1)) * (0.5 + Math.random() / 2);
      logger.debug({ what, attempt: i, delayMs: Math.round(delay), status: res?.statusCode }, 'retrying registry request');
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** One registry call with auth, a re-challenge on 401, retries and manual redirects. */
  async function call(registry: string, c: Call): Promise<Response> {
    const base = endpoint(registry);
    let challenge = await probe(registry);
    let rechallenged = false;
    for (;;) {
      let url = c.url.startsWith('http://') || c.url.startsWith('https://') ? c.url : `${base}${c.url}`;
      const auth = await authorization(registry, challenge, c.scopes);
      const res = await withRetries(c.what, async () => {
        const headers: Record<string, string> = { 'user-agent': userAgent, ...(c.headers ?? {}) };
        if (auth && sameOrigin(url, base)) headers.authorization = auth;
        const body = c.body ? await c.body() : undefined;
        return raw(c.method, url, headers, body);
      });
      if (res.statusCode === 401 && !rechallenged) {
        rechallenged = true;
        const fresh = pickChallenge(res.headers['www-authenticate']);
        await res.body.dump();
        if (fresh) {
          challenge = fresh;
          challenges.set(registry, Promise.resolve(fresh));
          for (const key of [...tokens.keys()]) if (key.startsWith(`${registry}|`)) tokens.delete(key);
          continue;
        }
        throw new OciError('UNAUTHORIZED', `${c.what}: HTTP 401 and no usable challenge`, { status: 401 });
      }
      // Redirects (blob storage): followed by hand; Authorization stays with the registry's origin.
      if (redirectStatuses.has(res.statusCode) && (c.method === 'GET' || c.method === 'HEAD')) {
        let current = res;
        for (let hops = 0; redirectStatuses.has(current.statusCode); hops++) {
          const location = header(current.headers.location);
          await current.body.dump();
          if (!location || hops >= 10) throw new OciError('UNEXPECTED_STATUS', `${c.what}: redirect without Location or too many redirects`, { status: current.statusCode });
          url = new URL(location, url).toString();
          const headers: Record<string, string> = { 'user-agent': userAgent, ...(c.headers ?? {}) };
          if (auth && sameOrigin(url, base)) headers.authorization = auth;
          current = await withRetries(c.what, () => raw(c.method, url, headers));
        }
        return current;
      }
      return res;
    }
  }

  const repoScope = (repo: Reference, actions: string) => `repository:${repo.repository}:${actions}`;
  const fail = async (res: Response, what: string) => { throw errorFromResponse(res.statusCode, await res.body.text().catch(() => ''), what); };

  const client: RegistryClient = {
    async getManifest(ref) {
      const what = `get manifest ${formatReference(ref)}`;
      const res = await call(ref.registry, {
        method: 'GET', url: `/v2/${ref.repository}/manifests/${manifestIdentifier(ref)}`, scopes: [repoScope(ref, 'pull')], what,
        headers: { accept: manifestMediaTypes.join(', ') },
      });
      if (res.statusCode !== 200) return fail(res, what);
      const declared = Number(header(res.headers['content-length']) ?? '0');
      if (declared > maxManifestBytes) {
        await res.body.dump();
        throw new OciError('MANIFEST_TOO_LARGE', `${what}: ${declared} bytes is over the ${maxManifestBytes}-byte limit`);
      }
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of res.body) {
        length += (chunk as Buffer).length;
        if (length > maxManifestBytes) {
          res.body.destroy();
          throw new OciError('MANIFEST_TOO_LARGE', `${what}: over the ${maxManifestBytes}-byte limit`);
        }
        chunks.push(chunk as Buffer);
      }
      const bytes = Buffer.concat(chunks);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (ref.digest && ref.digest.startsWith('sha256:') && ref.digest !== digest) {
        throw new OciError('MANIFEST_DIGEST_MISMATCH', `${what}: content hashes to ${digest}`);
      }
      const contentType = header(res.headers['content-type'])?.split(';')[0]?.trim();
      let mediaType = contentType && manifestMediaTypes.includes(contentType) ? contentType : undefined;
      if (!mediaType) {
        try { mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType; } catch { /* reported below */ }
      }
      if (!mediaType) throw new OciError('UNEXPECTED_STATUS', `${what}: no manifest media type (Content-Type ${contentType ?? 'absent'})`);
      return { mediaType, digest, bytes };
    },

    async headManifest(ref) {
      const what = `head manifest ${formatReference(ref)}`;
      const res = await call(ref.registry, {
        method: 'HEAD', url: `/v2/${ref.repository}/manifests/${manifestIdentifier(ref)}`, scopes: [repoScope(ref, 'pull')], what,
        headers: { accept: manifestMediaTypes.join(', ') },
      });
      await res.body.dump();
      if (res.statusCode === 404) return undefined;
      if (res.statusCode !== 200) throw errorFromResponse(res.statusCode, '', what);
      const digest = header(res.headers['docker-content-digest']);
      if (!digest) return undefined;
      return { mediaType: header(res.headers['content-type'])?.split(';')[0]?.trim() ?? '', digest, size: Number(header(res.headers['content-length']) ?? 0) };
    },

    async putManifest(ref, bytes, mediaType) {
      const what = `put manifest ${formatReference(ref)}`;
      if (bytes.length > maxManifestBytes) throw new OciError('MANIFEST_TOO_LARGE', `${what}: ${bytes.length} bytes`);
      const res = await call(ref.registry, {
        method: 'PUT', url: `/v2/${ref.repository}/manifests/${manifestIdentifier(ref)}`, scopes: [repoScope(ref, 'pull,push')], what,
        headers: { 'content-type': mediaType }, body: async () => bytes,
      });
      if (res.statusCode !== 201 && res.statusCode !== 200) return fail(res, what);
      await res.body.dump();
      return header(res.headers['docker-content-digest']) ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    },

    async openBlob(repo, desc) {
      const what = `get blob ${desc.digest} from ${repo.registry}/${repo.repository}`;
      const res = await call(repo.registry, { method: 'GET', url: `/v2/${repo.repository}/blobs/${desc.digest}`, scopes: [repoScope(repo, 'pull')], what });
      if (res.statusCode !== 200) return fail(res, what);
      const verify = verifyingStream(desc);
      res.body.on('error', (error) => verify.destroy(new OciError('NETWORK', `${what}: ${error.message}`, { cause: error })));
      return res.body.pipe(verify);
    },

    async hasBlob(repo, digest) {
      const what = `head blob ${digest}`;
      const res = await call(repo.registry, { method: 'HEAD', url: `/v2/${repo.repository}/blobs/${digest}`, scopes: [repoScope(repo, 'pull')], what });
      await res.body.dump();
      if (res.statusCode === 200) return true;
      if (res.statusCode === 404) return false;
      throw errorFromResponse(res.statusCode, '', what);
    },

    async pushBlob(repo, desc, open, pushOptions) {
      if (await client.hasBlob(repo, desc.digest)) return 'exists';
      const what = `push blob ${desc.digest} to ${repo.registry}/${repo.repository}`;
      const scopes = [repoScope(repo, 'pull,push'), ...(pushOptions?.mountFrom ? [`repository:${pushOptions.mountFrom}:pull`] : [])];
      for (let attempt = 1; ; attempt++) {
        try {
          return await uploadOnce(repo, desc, open, scopes, what, pushOptions?.mountFrom);
        } catch (error) {
          // A failed upload is retried whole, with a fresh stream.
          if (!(error instanceof OciError && error.transient) || attempt >= attempts) throw error;
          logger.debug({ what, attempt }, 'retrying blob upload');
          await new Promise((r) => setTimeout(r, Math.min(maxDelay, baseDelay * 2 ** attempt)));
        }
      }
    },

    async listTags(repo) {
      const tags: string[] = [];
      let url: string | undefined = `/v2/${repo.repository}/tags/list`;
      while (url) {
        const what = `list tags of ${repo.registry}/${repo.repository}`;
        const res: Response = await call(repo.registry, { method: 'GET', url, scopes: [repoScope(repo, 'pull')], what });
        if (res.statusCode === 404) { await res.body.dump(); return tags; }
        if (res.statusCode !== 200) return fail(res, what);
        const json = (await res.body.json()) as { tags?: string[] | null };
        tags.push(...(json.tags ?? []));
        const link = header(res.headers.link);
        const next = link ? /<([^>]+)>;\s*rel="?next"?/.exec(link)?.[1] : undefined;
        url = next; // relative or absolute: call() takes both
      }
      return tags;
    },
  };

  async function uploadOnce(repo: Reference, desc: { digest: string; size: number }, open: () => Promise<Readable>, scopes: string[], what: string, mountFrom?: string): Promise<'mounted' | 'uploaded'> {
    const base = endpoint(repo.registry);
    const start = mountFrom
      ? `/v2/${repo.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(mountFrom)}`
      : `/v2/${repo.repository}/blobs/uploads/`;
    const res = await call(repo.registry, { method: 'POST', url: start, scopes, what, headers: { 'content-length': '0' } });
    if (res.statusCode === 201 && mountFrom) { await res.body.dump(); return 'mounted'; }
    if (res.statusCode !== 202) return fail(res, what);
    await res.body.dump();
    let location = uploadLocation(res, base, what);

    if (options.chunkSize && desc.size > options.chunkSize) {
      let offset = 0;
      const stream = await open();
      for await (const chunk of chunked(stream, options.chunkSize)) {
        const body = chunk;
        const patch = await call(repo.registry, {
          method: 'PATCH', url: location, scopes, what,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length), 'content-range': `${offset}-${offset + body.length - 1}` },
          body: async () => body,
        });
        if (patch.statusCode !== 202) return fail(patch, `${what} (chunk at ${offset})`);
        await patch.body.dump();
        location = uploadLocation(patch, base, what);
        offset += body.length;
      }
      const done = await call(repo.registry, { method: 'PUT', url: withDigestParam(location, desc.digest), scopes, what, headers: { 'content-length': '0' } });
      if (done.statusCode !== 201) return fail(done, what);
      await done.body.dump();
      return 'uploaded';
    }

    const put = await call(repo.registry, {
      method: 'PUT', url: withDigestParam(location, desc.digest), scopes, what,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: open,
    });
    if (put.statusCode !== 201) return fail(put, what);
    await put.body.dump();
    return 'uploaded';
  }

  return client;
}

function pickChallenge(value: string | string[] | undefined): Challenge | undefined {
  const text = Array.isArray(value) ? value.join(', ') : value;
  if (!text) return undefined;
  const all = parseChallenges(text);
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The upload session URL as the registry gave it (relative ones resolved against the registry). */
function uploadLocation(res: Response, base: string, what: string): string {
  const location = header(res.headers.location);
  if (!location) throw new OciError('UNEXPECTED_STATUS', `${what}: upload response without Location`);
  return location.startsWith('http://') || location.startsWith('https://') ? location : new URL(location, base).toString();
}

function withDigestParam(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

function sameOrigin(url: string, base: string): boolean {
  return new URL(url).origin === new URL(base).origin;
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = header(value);
  if (!text) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds)) return Math.min(seconds * 1000, 60_000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - Date.now()), 60_000);
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

async function* chunked(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    pending.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    while (length >= size) {
      const all = Buffer.concat(pending);
      yield all.subarray(0, size);
      pending = [all.subarray(size)];
      length = all.length - size;
    }
  }
  if (length > 0) yield Buffer.concat(pending);
}

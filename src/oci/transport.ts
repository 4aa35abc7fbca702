import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { Agent, request, type Dispatcher } from 'undici';
import { redactUrl, type Logger } from '../lib/log.js';
import { pickChallenge, type Challenge } from './challenge.js';
import { errorFromResponse, OciError } from './errors.js';
import type { Credentials, Keychain } from './keychain.js';

export interface TransportOptions {
  readonly logger: Logger;
  readonly dispatcher?: Dispatcher;
  readonly keychain?: Keychain;
  /** Default: plain HTTP only for localhost, 127.0.0.0/8 and [::1] (as docker does). */
  readonly plainHttp?: boolean | ((registry: string) => boolean);
  /** Attempts per operation (default 4), backoff between them (200 ms doubling, at most 5 s, jittered), the longest Retry-After honoured (60 s). */
  readonly retry?: { readonly attempts?: number; readonly baseDelayMs?: number; readonly maxDelayMs?: number; readonly maxRetryAfterMs?: number };
  /** How long to wait for response headers (default 30 s) and between body chunks (default 60 s). */
  readonly timeouts?: { readonly headersMs?: number; readonly bodyMs?: number };
  readonly userAgent?: string;
}

export interface Exchange {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path below the registry's base URL, or an absolute URL (upload Locations, pagination links). */
  readonly url: string;
  /** Token scopes the request needs ('repository:a/b:pull'). */
  readonly scopes: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  /** Called for every send of the request (a re-challenge sends it again), so a stream body is fresh each time. */
  readonly body?: () => Promise<Buffer | Readable | undefined>;
  /** What the caller is doing, for errors and logs: 'get manifest host/repo:tag'. */
  readonly what: string;
  readonly signal?: AbortSignal;
}

export type RegistryResponse = Dispatcher.ResponseData;

/**
 * HTTP to registries: the scheme, the ping and its challenge, tokens cached
 * per (registry, scope), one re-challenge on 401, redirects followed by hand,
 * timeouts, and retries of whole operations. It knows nothing of manifests or
 * blobs; `client.ts` builds those on it.
 */
export interface RegistryTransport {
  /** 'https://host:port' or, for plain-HTTP registries, 'http://host:port'. */
  endpoint(registry: string): string;
  /**
   * One authenticated exchange. Never retried here: whether a request may be
   * sent again is the operation's business (see `retrying`). A connection
   * failure rejects with OciError NETWORK naming `what`.
   */
  send(registry: string, exchange: Exchange): Promise<RegistryResponse>;
  /**
   * Runs `operation` (sending its requests and reading their bodies) and runs
   * it again after a transient failure (`OciError.transient`: connection
   * errors, 429, 5xx), after exponential backoff with jitter or the
   * registry's Retry-After, at most `attempts` times in all.
   */
  retrying<T>(what: string, operation: (attempt: number) => Promise<T>): Promise<T>;
  /** The typed error for an unexpected answer, from its `{errors: [...]}` body; a Retry-After is kept for `retrying`. */
  failure(res: RegistryResponse, what: string): Promise<OciError>;
  /** The whole body, or undefined when it runs over `maxBytes`; a cut connection is NETWORK. */
  readBody(res: RegistryResponse, what: string, maxBytes?: number): Promise<Buffer | undefined>;
  /** Discards the rest of a body (a failure doing so is of no interest). */
  discard(res: RegistryResponse): Promise<void>;
  /** The wait before attempt `attempt + 1`: Retry-After when the error carried one, else backoff with jitter. */
  delayAfter(attempt: number, error?: unknown): number;
  readonly attempts: number;
  readonly logger: Logger;
}

const redirectStatuses = new Set([301, 302, 303, 307, 308]);
/** Retry-After of the answer an error was made from, in ms. */
const retryAfterOf = new WeakMap<OciError, number>();

export function createRegistryTransport(options: TransportOptions): RegistryTransport {
  const dispatcher = options.dispatcher ?? new Agent();
  const logger = options.logger;
  const attempts = Math.max(1, options.retry?.attempts ?? 4);
  const baseDelay = options.retry?.baseDelayMs ?? 200;
  const maxDelay = options.retry?.maxDelayMs ?? 5000;
  const maxRetryAfter = options.retry?.maxRetryAfterMs ?? 60_000;
  const headersTimeout = options.timeouts?.headersMs ?? 30_000;
  const bodyTimeout = options.timeouts?.bodyMs ?? 60_000;
  const userAgent = options.userAgent ?? 'patchd/0.1';
  const tokens = new LRUCache<string, string>({ max: 500 });
  const tokenFetches = new Map<string, Promise<string>>();
  const challenges = new Map<string, Promise<Challenge | undefined>>();

  const plain = (registry: string) => {
    if (typeof options.plainHttp === 'function') return options.plainHttp(registry);
    if (options.plainHttp) return true;
    const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  };
  const endpoint = (registry: string) => `${plain(registry) ? 'http' : 'https'}://${registry === 'docker.io' ? 'registry-1.docker.io' : registry}`;
  const credentials = (registry: string) => options.keychain?.resolve(registry) ?? Promise.resolve(undefined);

  /** Every failure of undici or the socket, as NETWORK naming the operation. */
  const networkError = (error: unknown, what: string, detail: string) =>
    error instanceof OciError ? error : new OciError('NETWORK', `${what}: ${detail}: ${(error as Error)?.message ?? String(error)}`, { cause: error });

  function raw(what: string, method: string, url: string, headers: Record<string, string>, body?: Buffer | Readable | string, signal?: AbortSignal): Promise<RegistryResponse> {
    return request(url, {
      method: method as Dispatcher.HttpMethod, headers, dispatcher, headersTimeout, bodyTimeout,
      ...(body !== undefined ? { body } : {}), ...(signal ? { signal } : {}),
    }).catch((error: unknown) => { throw networkError(error, what, `${method} ${redactUrl(url)}`); });
  }

  async function readBody(res: RegistryResponse, what: string, maxBytes = Infinity): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let length = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        length += chunk.length;
        if (length > maxBytes) { res.body.destroy(); return undefined; }
        chunks.push(chunk);
      }
    } catch (error) {
      throw networkError(error, what, `reading the response body after ${length} bytes`);
    }
    return Buffer.concat(chunks);
  }

  const discard = (res: RegistryResponse) => res.body.dump().catch(() => undefined);

  async function failure(res: RegistryResponse, what: string): Promise<OciError> {
    let text = '';
    // An error body names the registry's code; a body that cannot be read leaves the status to speak.
    if (res.statusCode >= 400) text = (await readBody(res, what, 64 * 1024).catch(() => undefined))?.toString('utf8') ?? '';
    else await discard(res);
    const error = errorFromResponse(res.statusCode, text, what);
    const retryAfter = retryAfterMs(res.headers['retry-after'], maxRetryAfter);
    if (retryAfter !== undefined) retryAfterOf.set(error, retryAfter);
    return error;
  }

  /** GET /v2/ without credentials: learns how the registry wants to be spoken to. */
  function probe(registry: string, what: string): Promise<Challenge | undefined> {
    let known = challenges.get(registry);
    if (!known) {
      known = (async () => {
        const res = await raw(`${what} (ping ${registry})`, 'GET', `${endpoint(registry)}/v2/`, { 'user-agent': userAgent });
        if (res.statusCode === 401) { await discard(res); return pickChallenge(res.headers['www-authenticate']); }
        if (res.statusCode >= 400 && res.statusCode !== 404) throw await failure(res, `${what} (ping ${registry})`);
        await discard(res);
        return undefined;
      })();
      const settled = known;
      known.catch(() => { if (challenges.get(registry) === settled) challenges.delete(registry); });
      challenges.set(registry, known);
    }
    return known;
  }

  const tokenKey = (registry: string, scopes: readonly string[]) => `${registry}|${[...new Set(scopes)].sort().join(' ')}`;

  async function authorization(registry: string, challenge: Challenge | undefined, scopes: readonly string[], what: string): Promise<{ header?: string; tokenKey?: string }> {
    if (!challenge) return {};
    const creds = await credentials(registry);
    if (challenge.scheme === 'basic') {
      return creds?.username !== undefined ? { header: `Basic ${basic(creds)}` } : {};
    }
    if (challenge.scheme !== 'bearer') return {};
    if (creds?.registryToken) return { header: `Bearer ${creds.registryToken}` };
    if (challenge.params.scope) scopes = [...scopes, ...challenge.params.scope.split(' ')];
    const key = tokenKey(registry, scopes);
    const cached = tokens.get(key);
    if (cached) return { header: `Bearer ${cached}`, tokenKey: key };
    // Concurrent operations needing the same scope share one token request.
    let pending = tokenFetches.get(key);
    if (!pending) {
      pending = fetchToken(registry, challenge, [...new Set(scopes)].sort(), creds, what).then((t) => {
        tokens.set(key, t.token, { ttl: Math.max(1, t.expiresIn - 5) * 1000 });
        return t.token;
      }).finally(() => tokenFetches.delete(key));
      tokenFetches.set(key, pending);
    }
    return { header: `Bearer ${await pending}`, tokenKey: key };
  }

  async function fetchToken(registry: string, challenge: Challenge, scopes: readonly string[], creds: Credentials | undefined, what: string) {
    const realm = challenge.params.realm;
    if (!realm) throw new OciError('AUTH_FAILED', `${what}: ${registry} sent a Bearer challenge without a realm`);
    const url = new URL(realm);
    const tokenWhat = `${what} (token from ${url.origin}${url.pathname})`;
    const headers: Record<string, string> = { 'user-agent': userAgent };
    let res: RegistryResponse;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, service: challenge.params.service ?? '', scope: scopes.join(' ') });
      res = await raw(tokenWhat, 'POST', realm, { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, form.toString());
    } else {
      if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      // Harbor answers POST with 405: tokens are fetched with GET and Basic credentials.
      if (creds?.username !== undefined) headers.authorization = `Basic ${basic(creds)}`;
      res = await raw(tokenWhat, 'GET', url.toString(), headers);
    }
    if (res.statusCode !== 200) {
      await discard(res);
      // A 429 or 5xx makes this transient (the operation is retried); a 401 or 403 is final.
      const error = new OciError('AUTH_FAILED', `${tokenWhat} for ${registry} failed: HTTP ${res.statusCode}`, { status: res.statusCode });
      const retryAfter = retryAfterMs(res.headers['retry-after'], maxRetryAfter);
      if (retryAfter !== undefined) retryAfterOf.set(error, retryAfter);
      throw error;
    }
    const text = (await readBody(res, tokenWhat, 1024 * 1024))?.toString('utf8');
    if (text === undefined) throw new OciError('AUTH_FAILED', `${tokenWhat}: the response is over 1 MiB`);
    let json: { token?: string; access_token?: string; expires_in?: number };
    try { json = JSON.parse(text); } catch { throw new OciError('AUTH_FAILED', `${tokenWhat}: the response is not JSON`); }
    const token = json.token ?? json.access_token;
    if (!token) throw new OciError('AUTH_FAILED', `${tokenWhat}: the response has no token`);
    return { token, expiresIn: typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 60 };
  }

  async function send(registry: string, exchange: Exchange): Promise<RegistryResponse> {
    const base = endpoint(registry);
    const { what } = exchange;
    let challenge = await probe(registry, what);
    let scopes = exchange.scopes;
    let url = /^https?:\/\//.test(exchange.url) ? exchange.url : `${base}${exchange.url}`;
    for (let rechallenged = false; ; rechallenged = true) {
      const auth = await authorization(registry, challenge, scopes, what);
      const headers: Record<string, string> = { 'user-agent': userAgent, ...(exchange.headers ?? {}) };
      if (auth.header && sameOrigin(url, base)) headers.authorization = auth.header;
      const body = exchange.body ? await exchange.body() : undefined;
      const res = await raw(what, exchange.method, url, headers, body, exchange.signal);
      if (res.statusCode === 401 && !rechallenged) {
        // An expired token or one short of a scope: learn the challenge again and ask once more.
        const fresh = pickChallenge(res.headers['www-authenticate']);
        await discard(res);
        if (!fresh) throw new OciError('UNAUTHORIZED', `${what}: HTTP 401 and no usable challenge`, { status: 401 });
        if (auth.tokenKey) tokens.delete(auth.tokenKey);
        // The scope a 401 names belongs to this request, not to the registry's challenge.
        const { scope, error: _error, ...params } = fresh.params;
        challenge = { scheme: fresh.scheme, params };
        challenges.set(registry, Promise.resolve(challenge));
        if (scope) scopes = [...scopes, ...scope.split(' ')];
        continue;
      }
      if (!redirectStatuses.has(res.statusCode) || (exchange.method !== 'GET' && exchange.method !== 'HEAD')) return res;
      // Redirects (blob storage) are followed by hand: Authorization stays with the registry's origin.
      let current = res;
      for (let hops = 0; redirectStatuses.has(current.statusCode); hops++) {
        const location = header(current.headers.location);
        await discard(current);
        if (!location || hops >= 10) throw new OciError('UNEXPECTED_STATUS', `${what}: redirect without Location or too many redirects`, { status: current.statusCode });
        url = new URL(location, url).toString();
        const next: Record<string, string> = { 'user-agent': userAgent, ...(exchange.headers ?? {}) };
        if (auth.header && sameOrigin(url, base)) next.authorization = auth.header;
        current = await raw(what, exchange.method, url, next, undefined, exchange.signal);
      }
      return current;
    }
  }

  const delayAfter = (attempt: number, error?: unknown) =>
    (error instanceof OciError ? retryAfterOf.get(error) : undefined) ?? Math.min(maxDelay, baseDelay * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);

  async function retrying<T>(what: string, operation: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation(attempt);
      } catch (error) {
        if (!(error instanceof OciError && error.transient) || attempt >= attempts) throw error;
        const delay = delayAfter(attempt, error);
        logger.debug({ what, attempt, code: error.code, status: error.status, delayMs: Math.round(delay) }, 'retrying registry operation');
        await sleep(delay);
      }
    }
  }

  return { endpoint, send, retrying, failure, readBody, discard, delayAfter, attempts, logger };
}

function basic(creds: Credentials): string {
  return Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
}

export function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function sameOrigin(url: string, base: string): boolean {
  return new URL(url).origin === new URL(base).origin;
}

/** Retry-After as seconds or an HTTP date, in ms, capped. */
function retryAfterMs(value: string | string[] | undefined, max: number): number | undefined {
  const text = header(value)?.trim();
  if (!text) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, max);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - Date.now()), max);
}


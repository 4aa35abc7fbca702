import { readFile } from 'node:fs/promises';
import { request, type Dispatcher } from 'undici';
import { OciError } from './errors.js';
import type { Credentials, Keychain } from './keychain.js';

export interface AcrEntraOptions {
  /** The registry as image references name it: 'myregistry.azurecr.io'. */
  readonly registry: string;
  readonly tenantId: string;
  readonly clientId: string;
  /** Workload identity: the federated (projected service account) token, re-read whenever an Entra token is needed, as the kubelet rotates it. */
  readonly tokenFile?: string;
  /** A client secret of the app registration, when there is no federated token. */
  readonly clientSecret?: string;
  /** Default 'https://login.microsoftonline.com/'. */
  readonly authorityHost?: string;
  /** Where the registry answers `/oauth2/exchange`; default `https://<registry>`. */
  readonly endpoint?: string;
  readonly dispatcher: Dispatcher;
  /** Clock in ms, for tests. */
  readonly now?: () => number;
}

const scope = 'https://containerregistry.azure.net/.default';
/** Renew a token this long before it expires (at most half its lifetime), so one never runs out mid-operation. */
const renewBeforeMs = 5 * 60_000;

interface Held { readonly value: string; readonly renewAt: number }

/**
 * ACR with Microsoft Entra credentials (Azure's AAD-OAuth protocol): an Entra
 * access token for the registry scope (client credentials with a federated
 * assertion or a client secret) is exchanged at the registry's
 * `/oauth2/exchange` for an ACR refresh token, which is the registry's
 * `identityToken`: the transport turns it into access tokens per scope at
 * `/oauth2/token`. Both tokens are held until shortly before they expire, and
 * concurrent callers share one exchange. Errors name the registry, never a token.
 */
export function acrEntraKeychain(options: AcrEntraOptions): Keychain {
  if (!options.tokenFile && !options.clientSecret) throw new OciError('AUTH_FAILED', `ACR ${options.registry}: Entra credentials need a federated token file or a client secret`);
  const now = options.now ?? Date.now;
  const host = options.registry.toLowerCase();
  const authority = (options.authorityHost ?? 'https://login.microsoftonline.com/').replace(/\/?$/, '/');
  const endpoint = (options.endpoint ?? `https://${options.registry}`).replace(/\/$/, '');
  let entra: Held | undefined;
  let refresh: Held | undefined;
  let pending: Promise<string> | undefined;

  const renewAt = (expiresAtMs: number) => {
    const lifetime = expiresAtMs - now();
    return expiresAtMs - Math.min(renewBeforeMs, lifetime / 2);
  };

  async function post(url: string, form: Record<string, string>, what: string): Promise<Record<string, unknown>> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'POST', dispatcher: options.dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(form).toString(),
      });
    } catch (error) {
      throw new OciError('NETWORK', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
    const text = await res.body.text().catch(() => '');
    let json: Record<string, unknown> = {};
    try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* a status says enough */ }
    if (res.statusCode !== 200) {
      // OAuth's `error` is a fixed word ('invalid_client'); descriptions may quote what was sent, so they stay out.
      const code = typeof json.error === 'string' && /^[a-z_]{1,64}$/.test(json.error) ? ` (${json.error})` : '';
      throw new OciError('AUTH_FAILED', `${what} failed: HTTP ${res.statusCode}${code}`, { status: res.statusCode });
    }
    return json;
  }

  async function entraToken(): Promise<string> {
    if (entra && now() < entra.renewAt) return entra.value;
    const what = `Entra token for ACR ${options.registry} (tenant ${options.tenantId}, client ${options.clientId})`;
    const form: Record<string, string> = { client_id: options.clientId, scope, grant_type: 'client_credentials' };
    if (options.tokenFile) {
      let assertion: string;
      try {
        assertion = (await readFile(options.tokenFile, 'utf8')).trim();
      } catch (error) {
        throw new OciError('AUTH_FAILED', `${what}: cannot read the federated token file ${options.tokenFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
      }
      form.client_assertion_type = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
      form.client_assertion = assertion;
    } else {
      form.client_secret = options.clientSecret!;
    }
    const json = await post(`${authority}${encodeURIComponent(options.tenantId)}/oauth2/v2.0/token`, form, what);
    const token = json.access_token;
    if (typeof token !== 'string' || !token) throw new OciError('AUTH_FAILED', `${what}: the answer has no access_token`);
    const expiresIn = Number(json.expires_in);
    const expiresAt = Number.isFinite(expiresIn) && expiresIn > 0 ? now() + expiresIn * 1000 : jwtExpiry(token) ?? now() + 60_000;
    entra = { value: token, renewAt: renewAt(expiresAt) };
    return token;
  }

  async function refreshToken(): Promise<string> {
    const accessToken = await entraToken();
    const what = `ACR token exchange at ${endpoint}/oauth2/exchange for ${options.registry}`;
    const json = await post(`${endpoint}/oauth2/exchange`, { grant_type: 'access_token', service: options.registry, tenant: options.tenantId, access_token: accessToken }, what);
    const token = json.refresh_token;
    if (typeof token !== 'string' || !token) throw new OciError('AUTH_FAILED', `${what}: the answer has no refresh_token`);
    // ACR's refresh tokens are JWTs; one without a readable exp is used once and then exchanged again after a minute.
    refresh = { value: token, renewAt: renewAt(jwtExpiry(token) ?? now() + 60_000) };
    return token;
  }

  return {
    async resolve(registry): Promise<Credentials | undefined> {
      if (registry.toLowerCase() !== host) return undefined;
      if (refresh && now() < refresh.renewAt) return { identityToken: refresh.value };
      pending ??= refreshToken().finally(() => { pending = undefined; });
      return { identityToken: await pending };
    },
  };
}

/** A JWT's `exp` in ms, read without verifying (the issuer checks it; we only need to know when to renew). */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

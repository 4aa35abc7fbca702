import { createSign, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { RegistryOptions } from './registry.js';
import { run, tmpDir } from './tools.js';

// The token service of distribution's token auth, on loopback: a GET with
// Basic credentials gets a JWT signed by the key of an openssl-made
// certificate, granting exactly the scopes asked for. It counts what it is
// asked, so tests can tell how often a client fetched tokens.

export interface TokenRequest {
  readonly authorization?: string;
  readonly scopes: string[];
}

export interface TokenServer {
  /** 'http://127.0.0.1:PORT' */
  readonly url: string;
  /** `${url}/token` */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** Every token request so far (wrong credentials included), oldest first. */
  readonly requests: readonly TokenRequest[];
  /** What `startRegistry({ token })` needs to trust this server; `realm` may name a proxy in front of it. */
  registryAuth(realm?: string): NonNullable<RegistryOptions['token']>;
  /** Forgets the requests seen so far. */
  clear(): void;
  stop(): Promise<void>;
}

export async function startTokenServer(options: {
  /** username → password of the accounts that get tokens. */
  readonly users: Readonly<Record<string, string>>;
  /** Lifetime of a token, in seconds (default 300). */
  readonly expiresIn?: number;
}): Promise<TokenServer> {
  const service = 'patchd-test';
  const issuer = 'patchd-test-issuer';
  const expiresIn = options.expiresIn ?? 300;
  const work = await tmpDir('patchd-token');
  try {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyPath = join(work.path, 'key.pem');
    const certPath = join(work.path, 'cert.pem');
    await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await run('openssl', ['req', '-x509', '-new', '-key', keyPath, '-subj', '/CN=patchd-test-token', '-days', '2', '-out', certPath]);
    // run() decodes stdout as UTF-8, which would mangle DER bytes: base64 them first.
    const x5c = (await run('sh', ['-c', `openssl x509 -in '${certPath}' -outform DER | base64 -w0`])).stdout.trim();
    const accepted = new Set(Object.entries(options.users).map(([u, p]) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`));

    const requests: TokenRequest[] = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://token.invalid');
      const scopes = url.searchParams.getAll('scope');
      requests.push({ ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), scopes });
      if (url.pathname !== '/token') { res.statusCode = 404; res.end(); return; }
      if (!req.headers.authorization || !accepted.has(req.headers.authorization)) { res.statusCode = 401; res.end(); return; }
      const subject = Buffer.from(req.headers.authorization.slice('Basic '.length), 'base64').toString('utf8').split(':')[0];
      const access = scopes.flatMap((s) => {
        const [type, name, actions] = s.split(':');
        return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const head = b64({ alg: 'RS256', typ: 'JWT', x5c: [x5c] });
      const body = b64({ iss: issuer, sub: subject, aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: String(Math.random()), access });
      const signature = createSign('RSA-SHA256').update(`${head}.${body}`).sign(privateKey).toString('base64url');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ token: `${head}.${body}.${signature}`, expires_in: expiresIn }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      url,
      realm: `${url}/token`,
      service,
      issuer,
      requests,
      registryAuth: (realm = `${url}/token`) => ({ realm, service, issuer, rootCertBundle: certPath }),
      clear: () => { requests.length = 0; },
      async stop() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await work.remove();
      },
    };
  } catch (error) {
    await work.remove();
    throw error;
  }
}

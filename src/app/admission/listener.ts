import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { createAdaptorServer } from '@hono/node-server';
import { ConfigError, type AdmissionConfig } from '../../config.js';
import type { Logger } from '../../lib/log.js';

/** The listener's certificate chain and key, PEM. */
export interface AdmissionTls {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * Reads `certFile` and `keyFile` and checks they make a TLS context (PEM, and
 * a key that matches the certificate): CONFIG_UNREADABLE or CONFIG_INVALID
 * naming the file, so a bad mount stops `patchd serve` at start-up.
 */
export async function readAdmissionTls(settings: Pick<AdmissionConfig, 'certFile' | 'keyFile'>): Promise<AdmissionTls> {
  const read = async (key: 'certFile' | 'keyFile') => {
    try {
      return await readFile(settings[key]);
    } catch (error) {
      throw new ConfigError('CONFIG_UNREADABLE', `admission.${key} ${settings[key]}: ${(error as Error).message}`, { cause: error });
    }
  };
  const tls = { cert: await read('certFile'), key: await read('keyFile') };
  try {
    createSecureContext(tls);
  } catch (error) {
    throw new ConfigError('CONFIG_INVALID', `admission.certFile ${settings.certFile} and admission.keyFile ${settings.keyFile} do not make a TLS certificate and key: ${(error as Error).message}`, { cause: error });
  }
  return tls;
}

export interface AdmissionListener {
  readonly port: number;
  /** Stops accepting connections and the certificate reloads; resolves when open requests are answered. */
  close(): Promise<void>;
}

/**
 * An HTTPS server for `fetch` (the admission app) on admission.host:port,
 * listening when the promise resolves (a port in use rejects it). Every
 * `reloadSeconds` it re-reads the certificate and key, and serves new ones
 * (cert-manager rotates them in place) once both files agree; a half-written
 * pair keeps the old one until the next look.
 */
export async function startAdmissionListener(args: {
  readonly settings: AdmissionConfig;
  readonly tls: AdmissionTls;
  readonly fetch: (request: Request) => Response | Promise<Response>;
  readonly logger: Logger;
}): Promise<AdmissionListener> {
  const { settings, logger } = args;
  const server = createAdaptorServer({ fetch: args.fetch, createServer, serverOptions: { cert: args.tls.cert, key: args.tls.key } }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => logger.error({ err: error }, 'admission listener error'));
  server.on('tlsClientError', (error) => logger.debug({ err: error.message }, 'admission TLS handshake failed'));

  let current = args.tls;
  let reloading = false;
  let lastProblem: string | undefined; // logged once, not on every look until it is fixed
  const reload = async () => {
    if (reloading) return;
    reloading = true;
    try {
      const next = await readAdmissionTls(settings);
      lastProblem = undefined;
      if (next.cert.equals(current.cert) && next.key.equals(current.key)) return;
      server.setSecureContext({ cert: next.cert, key: next.key });
      current = next;
      logger.info({ certFile: settings.certFile }, 'admission certificate reloaded');
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== lastProblem) logger.warn({ err: problem }, 'admission certificate not reloaded; serving the previous one');
      lastProblem = problem;
    } finally {
      reloading = false;
    }
  };
  const timer = settings.reloadSeconds > 0 ? setInterval(() => void reload(), settings.reloadSeconds * 1000) : undefined;
  timer?.unref();

  return {
    port: (server.address() as AddressInfo).port,
    close() {
      clearInterval(timer);
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}

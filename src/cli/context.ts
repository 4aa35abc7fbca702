import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { UsageError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { dockerConfigKeychain, multiKeychain, staticKeychain, type Keychain } from '../oci/keychain.js';

export interface Output {
  write(text: string): void;
  readonly isTTY: boolean;
}

/**
 * What a command may know of the process it runs in; `main.ts` builds it from
 * `process`, tests build their own. Commands never touch `process` themselves.
 */
export interface CliContext {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: Output;
  readonly stderr: Output;
  /** A pino logger writing JSON lines to stderr. */
  readonly createLogger: (level: string) => Logger;
  readonly homeDir: string;
  readonly tmpDir: string;
  readonly version: string;
  /** Calls `handler` once when the process is asked to stop (SIGTERM, SIGINT); for long-running commands. */
  readonly onStopSignal: (handler: (signal: string) => void) => void;
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `--log-level`, else $PATCHD_LOG_LEVEL, else the command's default; anything else is a usage error. */
export function logLevel(ctx: CliContext, flag: string | undefined, fallback: string): string {
  const level = flag ?? ctx.env['PATCHD_LOG_LEVEL'] ?? fallback;
  if (!logLevels.includes(level)) throw new UsageError(`--log-level takes ${logLevels.join(', ')} (got ${JSON.stringify(level)})`);
  return level;
}

/** patchd's own cache (apt indexes, .debs): $XDG_CACHE_HOME/patchd or ~/.cache/patchd. */
export function defaultCacheDir(ctx: CliContext): string {
  return join(ctx.env['XDG_CACHE_HOME'] ?? join(ctx.homeDir, '.cache'), 'patchd');
}

/**
 * Credentials for the one registry a command talks to: $PATCHD_REGISTRY_USERNAME /
 * $PATCHD_REGISTRY_PASSWORD (never argv), then docker's config.json.
 */
export function commandKeychain(ctx: CliContext, registry: string): Keychain {
  const docker = dockerConfigKeychain(join(ctx.env['DOCKER_CONFIG'] ?? join(ctx.homeDir, '.docker'), 'config.json'));
  const username = ctx.env['PATCHD_REGISTRY_USERNAME'];
  if (!username) return docker;
  return multiKeychain(staticKeychain({ [registry]: { username, password: ctx.env['PATCHD_REGISTRY_PASSWORD'] ?? '' } }), docker);
}

/**
 * Closes a dispatcher, waiting at most `ms` for requests still open: a body
 * that nobody reads any more must not keep the process alive (or its exit
 * code unset) forever.
 */
export async function closeWithin(dispatcher: Dispatcher, ms = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  const closed = dispatcher.close().then(() => 'closed' as const, () => 'closed' as const);
  const result = await Promise.race([closed, timedOut]);
  clearTimeout(timer);
  if (result === 'timeout') await dispatcher.destroy().catch(() => undefined);
}

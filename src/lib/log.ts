import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths that may hold secrets anywhere in a log record: never printed. */
export const redactPaths = [
  'password', '*.password', '*.*.password',
  'token', '*.token', 'auth', '*.auth',
  'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  'identityToken', '*.identityToken', 'registryToken', '*.registryToken',
  'secret', '*.secret', 'webhookSecret', '*.webhookSecret', 'clientSecret', '*.clientSecret', '*.*.clientSecret',
  'credentials', '*.credentials', '*.*.credentials',
];

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    { level: options.level ?? 'info', redact: { paths: redactPaths, censor: '[redacted]' }, base: undefined },
    options.destination,
  );
}

/** A logger that discards everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A URL as it may appear in a log line or an error message: never with its user:password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

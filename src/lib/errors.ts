/**
 * Where a failure comes from decides what to do about it, so every error code
 * carries one of these kinds:
 * - `input`: what we were given is wrong (a request, reference, config, image
 *   content); HTTP 400, never retried.
 * - `unsupported`: well-formed, but something patchd declines or cannot do
 *   (a media type, maintainer scripts without a handler); HTTP 422, never retried.
 * - `upstream`: a dependency answered, and its answer is final (denied,
 *   unknown manifest, a failed build); HTTP 502, never retried.
 * - `unavailable`: a dependency is busy, unreachable or cut us off; HTTP 503,
 *   worth another attempt (`transient`).
 * - `internal`: a fault of patchd's own; HTTP 500.
 */
export type FailureKind = 'input' | 'unsupported' | 'upstream' | 'unavailable' | 'internal';

/** A module's error codes and their kinds: `{ NETWORK: 'unavailable', ... } satisfies ErrorCodes`. */
export type ErrorCodes = Readonly<Record<string, FailureKind>>;

export interface PatchdErrorOptions {
  readonly cause?: unknown;
  readonly details?: Record<string, unknown>;
  /** Overrides the code's usual kind, for codes whose weight depends on the occasion (an HTTP status). */
  readonly kind?: FailureKind;
}

/**
 * Base for every error patchd raises on purpose. Each module subclasses it
 * with a union of its own stable codes, each with its kind; HTTP status and
 * exit-code mapping happen once, at the edge (`app.onError`, the CLI), and the
 * worker retries exactly what is `transient`.
 */
export class PatchdError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly kind: FailureKind;
  readonly details?: Readonly<Record<string, unknown>>;

  constructor(code: Code, kind: FailureKind, message: string, options?: PatchdErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.kind = options?.kind ?? kind;
    if (options?.details) this.details = options.details;
  }

  /** Worth another attempt later: the same work may succeed when a dependency recovers. */
  get transient(): boolean {
    return this.kind === 'unavailable';
  }
}

/**
 * The base of a module's error class, bound to its code table:
 * `export class DebError extends codedError(debCodes) {}`.
 */
export function codedError<const Codes extends ErrorCodes>(codes: Codes) {
  return class extends PatchdError<keyof Codes & string> {
    constructor(code: keyof Codes & string, message: string, options?: PatchdErrorOptions) {
      super(code, codes[code]!, message, options);
    }
  };
}

const statusOfKind: Record<FailureKind, 400 | 422 | 500 | 502 | 503> = {
  input: 400, unsupported: 422, upstream: 502, unavailable: 503, internal: 500,
};

/** The HTTP status an error answers with: its kind's for a PatchdError, 500 for anything else (a bug). */
export function httpStatusOf(error: unknown): 400 | 422 | 500 | 502 | 503 {
  return error instanceof PatchdError ? statusOfKind[error.kind] : 500;
}

/** Errors of the command line itself: a wrong flag or value. */
export const usageCodes = { USAGE: 'input' } as const satisfies ErrorCodes;
export class UsageError extends codedError(usageCodes) {
  constructor(message: string) {
    super('USAGE', message);
  }
}

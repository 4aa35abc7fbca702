/**
 * Base for every error patchd raises on purpose. Each module subclasses it
 * with its own stable `code` values; HTTP status mapping happens once, at the
 * edge (CLI exit codes, app.onError), never where the error is thrown.
 */
export class PatchdError extends Error {
  readonly code: string;
  readonly details?: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options?.details) this.details = options.details;
  }
}

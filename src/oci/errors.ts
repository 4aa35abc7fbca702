import { PatchdError } from '../lib/errors.js';

export interface RegistryErrorBody {
  readonly code: string;
  readonly message?: string;
  readonly detail?: unknown;
}

/**
 * Registry client errors. Codes are the distribution-spec error codes the
 * registry sent (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN, UNAUTHORIZED,
 * DENIED, TOOMANYREQUESTS, DIGEST_INVALID, ...) or our own:
 * BLOB_DIGEST_MISMATCH, BLOB_SIZE_MISMATCH, MANIFEST_TOO_LARGE,
 * MANIFEST_DIGEST_MISMATCH, REFERENCE_INVALID, NETWORK, UNEXPECTED_STATUS, AUTH_FAILED.
 */
export class OciError extends PatchdError {
  readonly status?: number;

  constructor(code: string, message: string, options?: { cause?: unknown; status?: number; errors?: readonly RegistryErrorBody[]; details?: Record<string, unknown> }) {
    super(code, message, {
      ...(options?.cause !== undefined ? { cause: options.cause } : {}),
      ...(options?.errors || options?.details ? { details: { ...(options.details ?? {}), ...(options.errors ? { errors: options.errors } : {}) } } : {}),
    });
    if (options?.status !== undefined) this.status = options.status;
  }

  /** Worth another attempt: throttling, server trouble, dropped connections. */
  get transient(): boolean {
    return this.code === 'NETWORK' || this.code === 'TOOMANYREQUESTS' || (this.status !== undefined && (this.status === 429 || this.status >= 500));
  }
}

/** Builds the error for a failed response from its `{errors: [...]}` body when it has one. */
export function errorFromResponse(status: number, bodyText: string, what: string): OciError {
  let errors: RegistryErrorBody[] | undefined;
  try {
    const parsed = JSON.parse(bodyText) as { errors?: unknown };
    if (Array.isArray(parsed.errors)) {
      errors = parsed.errors.filter((e): e is RegistryErrorBody => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string');
    }
  } catch { /* not JSON: keep the status */ }
  const first = errors?.[0];
  const code = first?.code ?? (status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'DENIED' : status === 404 ? 'NOT_FOUND' : status === 429 ? 'TOOMANYREQUESTS' : 'UNEXPECTED_STATUS');
  const message = `${what}: HTTP ${status}${first?.message ? ` ${first.code}: ${first.message}` : ''}`;
  return new OciError(code, message, { status, ...(errors ? { errors } : {}) });
}

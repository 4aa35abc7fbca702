import { PatchdError, type ErrorCodes, type FailureKind, type PatchdErrorOptions } from '../lib/errors.js';

export interface RegistryErrorBody {
  readonly code: string;
  readonly message?: string;
  readonly detail?: unknown;
}

/**
 * Registry client errors: the distribution-spec codes a registry sends, and our own.
 * A registry's answer with HTTP 429 or 5xx is `unavailable` whatever its code.
 */
export const ociCodes = {
  // distribution-spec v1.1 error codes
  BLOB_UNKNOWN: 'upstream',
  BLOB_UPLOAD_INVALID: 'upstream',
  BLOB_UPLOAD_UNKNOWN: 'upstream',
  DIGEST_INVALID: 'upstream',
  MANIFEST_BLOB_UNKNOWN: 'upstream',
  MANIFEST_INVALID: 'upstream',
  MANIFEST_UNKNOWN: 'upstream',
  NAME_INVALID: 'upstream',
  NAME_UNKNOWN: 'upstream',
  SIZE_INVALID: 'upstream',
  UNAUTHORIZED: 'upstream',
  DENIED: 'upstream',
  UNSUPPORTED: 'upstream',
  TOOMANYREQUESTS: 'unavailable',
  // ours
  NOT_FOUND: 'upstream',
  UNEXPECTED_STATUS: 'upstream',
  AUTH_FAILED: 'upstream',
  /** The connection failed or was cut before the operation completed. */
  NETWORK: 'unavailable',
  /** Bytes that are not what their digest or size says: damaged in transit (or in store), so worth another attempt. */
  BLOB_DIGEST_MISMATCH: 'unavailable',
  BLOB_SIZE_MISMATCH: 'unavailable',
  MANIFEST_DIGEST_MISMATCH: 'unavailable',
  MANIFEST_TOO_LARGE: 'unsupported',
  DIGEST_UNSUPPORTED: 'unsupported',
  REFERENCE_INVALID: 'input',
} as const satisfies ErrorCodes;
export type OciCode = keyof typeof ociCodes;

export class OciError extends PatchdError<OciCode> {
  readonly status?: number;

  constructor(code: OciCode, message: string, options?: PatchdErrorOptions & { status?: number; errors?: readonly RegistryErrorBody[] }) {
    const status = options?.status;
    const kind: FailureKind = status !== undefined && (status === 429 || status >= 500) ? 'unavailable' : options?.kind ?? ociCodes[code];
    super(code, kind, message, {
      kind,
      ...(options?.cause !== undefined ? { cause: options.cause } : {}),
      ...(options?.errors || options?.details ? { details: { ...(options.details ?? {}), ...(options.errors ? { errors: options.errors } : {}) } } : {}),
    });
    if (status !== undefined) this.status = status;
  }
}

function isOciCode(code: string): code is OciCode {
  return Object.hasOwn(ociCodes, code);
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
  const byStatus: OciCode = status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'DENIED' : status === 404 ? 'NOT_FOUND' : status === 429 ? 'TOOMANYREQUESTS' : 'UNEXPECTED_STATUS';
  const code = first && isOciCode(first.code) ? first.code : byStatus;
  const message = `${what}: HTTP ${status}${first?.message ? ` ${first.code}: ${first.message}` : first ? ` ${first.code}` : ''}`;
  return new OciError(code, message, { status, ...(errors ? { errors } : {}) });
}

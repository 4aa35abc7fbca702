import { codedError, type ErrorCodes } from '../../lib/errors.js';

export const admissionCodes = {
  /** The body is not an admission.k8s.io/v1 AdmissionReview request. */
  REVIEW_INVALID: 'input',
  /** A container's image is not a valid reference. */
  IMAGE_INVALID: 'input',
  /** A registry did not answer a lookup in time, or failed it. */
  LOOKUP_FAILED: 'unavailable',
} as const satisfies ErrorCodes;
export type AdmissionCode = keyof typeof admissionCodes;

export class AdmissionError extends codedError(admissionCodes) {}

import { z } from 'zod';

// admission.k8s.io/v1 AdmissionReview, as kube-apiserver sends it
// (https://kubernetes.io/docs/reference/config-api/apiserver-admission.v1/).
// Only what patchd reads is checked strictly; the objects themselves are
// read through workload.ts, which knows where their containers are.

const GroupVersionKind = z.object({ group: z.string(), version: z.string(), kind: z.string().min(1) });
const GroupVersionResource = z.object({ group: z.string(), version: z.string(), resource: z.string().min(1) });
/** A Kubernetes object as JSON: only an object (or null, for DELETE and CONNECT) is acceptable. */
const KubernetesObject = z.record(z.string(), z.unknown()).nullable().optional();

export const AdmissionRequestSchema = z.object({
  uid: z.string().min(1),
  kind: GroupVersionKind,
  resource: GroupVersionResource,
  subResource: z.string().optional(),
  requestKind: GroupVersionKind.optional(),
  requestResource: GroupVersionResource.optional(),
  requestSubResource: z.string().optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
  userInfo: z.looseObject({ username: z.string().optional() }).optional(),
  object: KubernetesObject,
  oldObject: KubernetesObject,
  dryRun: z.boolean().optional(),
  options: KubernetesObject,
});
export type AdmissionRequest = z.infer<typeof AdmissionRequestSchema>;

export const AdmissionReviewSchema = z.object({
  apiVersion: z.literal('admission.k8s.io/v1', { error: 'apiVersion must be admission.k8s.io/v1 (list v1 first in the webhook\'s admissionReviewVersions)' }),
  kind: z.literal('AdmissionReview'),
  request: AdmissionRequestSchema,
});

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: { readonly code: number; readonly reason?: string; readonly message: string };
  readonly patchType?: 'JSONPatch';
  /** base64 of the RFC 6902 patch. */
  readonly patch?: string;
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** The answer the API server expects: the request's uid, and the v1 envelope. */
export function reviewResponse(response: AdmissionResponse): AdmissionReviewResponse {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

import { z } from 'zod';
import { AdmissionError } from './errors.js';
import { jsonPointer } from './json-patch.js';

export const containerLists = ['initContainers', 'containers', 'ephemeralContainers'] as const;
export type ContainerList = (typeof containerLists)[number];

/** One container's image in an object under review, and where it sits. */
export interface ContainerImage {
  readonly list: ContainerList;
  readonly index: number;
  readonly name?: string;
  readonly image: string;
  /** RFC 6901 pointer to the `image` field in the object. */
  readonly pointer: string;
}

/**
 * Where the pod spec is in each kind patchd reviews, by `group/Kind` of the
 * request's `kind`. A Pod's `ephemeralcontainers` subresource sends the whole
 * Pod; before Kubernetes 1.22 it sent an EphemeralContainers object with the
 * list at its top.
 */
const podSpecPaths: Readonly<Record<string, readonly string[]>> = {
  '/Pod': ['spec'],
  '/PodTemplate': ['template', 'spec'],
  '/ReplicationController': ['spec', 'template', 'spec'],
  'apps/Deployment': ['spec', 'template', 'spec'],
  'apps/ReplicaSet': ['spec', 'template', 'spec'],
  'apps/StatefulSet': ['spec', 'template', 'spec'],
  'apps/DaemonSet': ['spec', 'template', 'spec'],
  'batch/Job': ['spec', 'template', 'spec'],
  'batch/CronJob': ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
  '/EphemeralContainers': [],
};

const ContainersSchema = z.array(z.looseObject({ name: z.string().optional(), image: z.string().optional() })).optional();

/** Whether objects of this kind carry containers patchd reviews. */
export function reviewsKind(kind: { group: string; kind: string }): boolean {
  return Object.hasOwn(podSpecPaths, `${kind.group}/${kind.kind}`);
}

/**
 * Every container image in `object` (a `kind` object), init containers first,
 * with the JSON pointer of each. Containers without an image (allowed in
 * templates) are left out; a container list that is not a list of objects is
 * REVIEW_INVALID.
 */
export function containerImages(kind: { group: string; kind: string }, object: Readonly<Record<string, unknown>>): ContainerImage[] {
  const path = podSpecPaths[`${kind.group}/${kind.kind}`];
  if (!path) return [];
  let spec: unknown = object;
  for (const token of path) {
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) return [];
    spec = (spec as Record<string, unknown>)[token];
  }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) return [];
  const found: ContainerImage[] = [];
  for (const list of containerLists) {
    const parsed = ContainersSchema.safeParse((spec as Record<string, unknown>)[list]);
    if (!parsed.success) {
      throw new AdmissionError('REVIEW_INVALID', `${jsonPointer([...path, list])} must be a list of containers: ${z.prettifyError(parsed.error)}`);
    }
    for (const [index, container] of (parsed.data ?? []).entries()) {
      if (container.image === undefined) continue;
      found.push({ list, index, ...(container.name ? { name: container.name } : {}), image: container.image, pointer: jsonPointer([...path, list, String(index), 'image']) });
    }
  }
  return found;
}

/** The images an UPDATE's oldObject already ran: an update that keeps them is not judged on them again. */
export function imagesIn(kind: { group: string; kind: string }, object: Readonly<Record<string, unknown>> | null | undefined): ReadonlySet<string> {
  if (!object) return new Set();
  try {
    return new Set(containerImages(kind, object).map((c) => c.image));
  } catch {
    return new Set(); // a malformed old object admitted nothing: judge every image
  }
}

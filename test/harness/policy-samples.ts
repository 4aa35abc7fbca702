import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// The sample workloads of deploy/policies/samples and the decision
// expected.yaml gives each, as patchd's admission webhook and the policy
// engines see them: a file holds one object (created), or an UPDATE as an
// AdmissionReview (samples/updates/).

export const policiesDir = fileURLToPath(new URL('../../deploy/policies/', import.meta.url));
export const samplesDir = join(policiesDir, 'samples');

export type Decision = 'allow' | 'deny';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface AdmissionReview {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  request: {
    uid: string;
    kind: { group: string; version: string; kind: string };
    resource: { group: string; version: string; resource: string };
    name: string;
    namespace?: string;
    operation: 'CREATE' | 'UPDATE';
    object: KubeObject;
    oldObject?: KubeObject | null;
    [key: string]: unknown;
  };
}

export interface PolicySample {
  /** The file's path under samples/, as expected.yaml names it. */
  readonly name: string;
  readonly path: string;
  readonly expected: Decision;
  /** Images a denial must name. */
  readonly denied: readonly string[];
  /** What patchd's webhook is sent: a CREATE of the file's object, or the file's own review. */
  readonly review: AdmissionReview;
}

const resources: Readonly<Record<string, string>> = {
  Pod: 'pods', ReplicationController: 'replicationcontrollers',
  Deployment: 'deployments', ReplicaSet: 'replicasets', StatefulSet: 'statefulsets', DaemonSet: 'daemonsets',
  Job: 'jobs', CronJob: 'cronjobs',
};

/** The AdmissionReview the API server sends for creating `object`. */
export function createReview(object: KubeObject, uid: string): AdmissionReview {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') as [string, string] : ['', object.apiVersion];
  const resource = resources[object.kind];
  if (!resource) throw new Error(`no resource known for kind ${object.kind}`);
  return {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: {
      uid, kind: { group, version, kind: object.kind }, resource: { group, version, resource },
      name: object.metadata.name, ...(object.metadata.namespace ? { namespace: object.metadata.namespace } : {}),
      operation: 'CREATE', object, oldObject: null,
    },
  };
}

/** Every sample expected.yaml lists, in its order; throws when a sample file is not listed or a listed one is missing. */
export async function loadPolicySamples(): Promise<PolicySample[]> {
  const expected = parse(await readFile(join(samplesDir, 'expected.yaml'), 'utf8')) as Record<string, { decision: Decision; denied?: string[] }>;
  const files = (await readdir(samplesDir, { recursive: true }))
    .filter((f) => f.endsWith('.yaml') && f !== 'expected.yaml');
  const unlisted = files.filter((f) => !Object.hasOwn(expected, f));
  if (unlisted.length) throw new Error(`samples without a decision in expected.yaml: ${unlisted.join(', ')}`);

  const samples: PolicySample[] = [];
  for (const [index, [name, { decision, denied = [] }]] of Object.entries(expected).entries()) {
    if (decision !== 'allow' && decision !== 'deny') throw new Error(`expected.yaml: ${name}: decision must be allow or deny`);
    if ((decision === 'deny') !== (denied.length > 0)) throw new Error(`expected.yaml: ${name}: a denial names its images, an allowed sample none`);
    const path = join(samplesDir, name);
    const document = parse(await readFile(path, 'utf8')) as KubeObject | AdmissionReview;
    const review = document.kind === 'AdmissionReview'
      ? document as AdmissionReview
      : createReview(document as KubeObject, `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`);
    samples.push({ name, path, expected: decision, denied, review });
  }
  return samples;
}

/**
 * A table of the samples on which some engine's decision differs from
 * expected.yaml: one row per sample, one column per engine ('-' where an
 * engine was not asked).
 */
export function disagreementTable(samples: readonly PolicySample[], decisions: ReadonlyMap<string, ReadonlyMap<string, Decision>>): string {
  const engines = [...decisions.keys()];
  const rows = samples
    .filter((s) => engines.some((e) => { const d = decisions.get(e)!.get(s.name); return d !== undefined && d !== s.expected; }))
    .map((s) => [s.name, s.expected, ...engines.map((e) => decisions.get(e)!.get(s.name) ?? '-')]);
  if (rows.length === 0) return '';
  const table = [['sample', 'expected', ...engines], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

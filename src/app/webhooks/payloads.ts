import { z } from 'zod';
import { manifestMediaTypes } from '../../oci/media-types.js';
import { usableDigest, usableTag, type PushEvent, type ReceivedEvents } from './events.js';

/**
 * Sender payloads → PushEvents. Schemas accept what the vendors really send
 * (extra fields, digest-only pushes, masked digests) and reject what cannot be
 * a delivery of theirs; the zod message goes back in the 400.
 */

const HarborScanOverview = z.record(z.string(), z.looseObject({ report_id: z.string().optional(), end_time: z.string().optional() }).nullish());
const HarborResource = z.looseObject({ digest: z.string().optional(), tag: z.string().optional(), resource_url: z.string().optional(), scan_overview: HarborScanOverview.nullish().catch(undefined) });
const HarborEventData = z.looseObject({
  resources: z.array(HarborResource).nullish(),
  repository: z.looseObject({ name: z.string().optional(), namespace: z.string().optional(), repo_full_name: z.string().optional() }).optional(),
});
const HarborDefault = z.looseObject({ type: z.string(), operator: z.string().optional(), event_data: HarborEventData });
const HarborCloudEvent = z.looseObject({ specversion: z.string(), type: z.string(), operator: z.string().optional(), data: HarborEventData });
export const HarborPayload = z.union([HarborDefault, HarborCloudEvent]);

const harborTriggers: Record<string, PushEvent['trigger']> = {
  PUSH_ARTIFACT: 'push', 'harbor.artifact.pushed': 'push',
  SCANNING_COMPLETED: 'scan-completed', 'harbor.scan.completed': 'scan-completed',
};

export function harborEvents(payload: z.infer<typeof HarborPayload>): ReceivedEvents {
  const data = ('event_data' in payload ? payload.event_data : payload.data) as z.infer<typeof HarborEventData>;
  const trigger = harborTriggers[payload.type];
  if (!trigger) return { events: [], ignored: [`Harbor ${payload.type} events do not trigger patching`] };
  const events: PushEvent[] = [];
  const ignored: string[] = [];
  const fullName = data.repository?.repo_full_name ?? [data.repository?.namespace, data.repository?.name].filter(Boolean).join('/');
  for (const resource of data.resources ?? []) {
    const url = resource.resource_url ?? '';
    const host = url.includes('/') ? url.slice(0, url.indexOf('/')) : '';
    const digest = usableDigest(resource.digest);
    const tag = resource.tag?.startsWith('sha256:') ? undefined : usableTag(resource.tag);
    if (!host || !fullName || (!digest && !tag)) { ignored.push(`Harbor resource ${url || '(no resource_url)'} names no registry, repository and digest or tag`); continue; }
    const scanRevision = trigger === 'scan-completed' ? scanRevisionOf(resource.scan_overview) : undefined;
    events.push({
      source: 'harbor', host, repository: fullName, trigger, ...(digest ? { digest } : {}), ...(tag ? { tag } : {}), ...(payload.operator ? { actor: payload.operator } : {}),
      ...(scanRevision ? { scanRevision } : {}),
    });
  }
  if (events.length === 0 && ignored.length === 0) ignored.push('Harbor event lists no resources');
  return { events, ignored };
}

/** Which scan a SCANNING_COMPLETED reports: its report id, else when it ended (one per report media type; the first that says). */
function scanRevisionOf(overview: z.infer<typeof HarborScanOverview> | null | undefined): string | undefined {
  for (const report of Object.values(overview ?? {})) {
    const id = report?.report_id ?? report?.end_time;
    if (id) return id;
  }
  return undefined;
}

export const AcrPayload = z.looseObject({
  action: z.string(),
  target: z.looseObject({ mediaType: z.string().optional(), digest: z.string().optional(), repository: z.string().optional(), tag: z.string().optional() }).optional(),
  request: z.looseObject({ host: z.string().optional(), useragent: z.string().optional() }).optional(),
});

export function acrEvents(payload: z.infer<typeof AcrPayload>): ReceivedEvents {
  if (payload.action !== 'push') return { events: [], ignored: [`ACR ${payload.action} events do not trigger patching`] };
  const host = payload.request?.host;
  const repository = payload.target?.repository;
  const digest = usableDigest(payload.target?.digest);
  const tag = usableTag(payload.target?.tag);
  if (!host || !repository || (!digest && !tag)) return { events: [], ignored: ['ACR push names no registry host, repository and digest or tag'] };
  return {
    events: [{ source: 'acr', host, repository, trigger: 'push', ...(digest ? { digest } : {}), ...(tag ? { tag } : {}), ...(payload.target?.mediaType ? { mediaType: payload.target.mediaType } : {}), ...(payload.request?.useragent ? { userAgent: payload.request.useragent } : {}) }],
    ignored: [],
  };
}

const GithubPackage = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  registry: z.looseObject({ type: z.string().optional(), url: z.string().optional() }).nullish(),
  owner: z.looseObject({ login: z.string() }).optional(),
  package_version: z.looseObject({
    name: z.string().optional(),
    package_url: z.string().optional(),
    container_metadata: z.looseObject({
      tag: z.looseObject({ name: z.string().nullish(), digest: z.string().nullish() }).nullish(),
      manifest: z.looseObject({ digest: z.string().nullish() }).nullish(),
    }).nullish(),
  }).nullish(),
});
export const GithubPackagePayload = z.looseObject({
  action: z.string(),
  package: GithubPackage.optional(),
  registry_package: GithubPackage.optional(),
}).refine((p) => p.package || p.registry_package, 'neither package nor registry_package is present');

export function ghcrEvents(payload: z.infer<typeof GithubPackagePayload>): ReceivedEvents {
  if (payload.action !== 'published' && payload.action !== 'updated') return { events: [], ignored: [`GitHub package ${payload.action} events do not trigger patching`] };
  const pkg = (payload.package ?? payload.registry_package)!;
  const version = pkg.package_version;
  const url = version?.package_url ?? '';
  // The registry type, not `ecosystem` or `package_type`: GitHub's own examples disagree on those.
  const container = pkg.registry?.type?.toUpperCase() === 'CONTAINER' || url.startsWith('ghcr.io/');
  if (!container) return { events: [], ignored: ['not a container package'] };
  const fromUrl = url.startsWith('ghcr.io/') ? url.slice('ghcr.io/'.length).replace(/[:@].*$/, '') : undefined;
  const owner = pkg.namespace?.split('/')[0] ?? pkg.owner?.login;
  const repository = (fromUrl ?? (owner ? `${owner}/${pkg.name}` : pkg.name)).toLowerCase(); // GHCR owners are lower-cased
  const digest = usableDigest(version?.container_metadata?.manifest?.digest) ?? usableDigest(version?.name) ?? usableDigest(version?.container_metadata?.tag?.digest);
  const tag = usableTag(version?.container_metadata?.tag?.name);
  if (!digest && !tag) return { events: [], ignored: ['GitHub package event names no digest or tag'] };
  return { events: [{ source: 'ghcr', host: 'ghcr.io', repository, trigger: 'push', ...(digest ? { digest } : {}), ...(tag ? { tag } : {}) }], ignored: [] };
}

const DistributionEvent = z.looseObject({
  action: z.string(),
  target: z.looseObject({
    mediaType: z.string().optional(), digest: z.string().optional(), repository: z.string().optional(), tag: z.string().optional(), url: z.string().optional(),
  }).optional(),
  request: z.looseObject({ host: z.string().optional(), useragent: z.string().optional() }).optional(),
  actor: z.looseObject({ name: z.string().optional() }).optional(),
});
export const DistributionEnvelope = z.looseObject({ events: z.array(DistributionEvent) });

export function distributionEvents(envelope: z.infer<typeof DistributionEnvelope>): ReceivedEvents {
  const events: PushEvent[] = [];
  const ignored: string[] = [];
  for (const e of envelope.events) {
    if (e.action !== 'push') { ignored.push(`${e.action} event`); continue; }
    const mediaType = e.target?.mediaType ?? '';
    // Blob pushes (layers, configs) also emit events: only manifests are images.
    if (!manifestMediaTypes.includes(mediaType)) { ignored.push(`push of ${mediaType || 'an unknown media type'} (not a manifest)`); continue; }
    let host = e.request?.host;
    if (!host && e.target?.url) { try { host = new URL(e.target.url).host; } catch { /* reported below */ } }
    const digest = usableDigest(e.target?.digest);
    const tag = usableTag(e.target?.tag);
    if (!host || !e.target?.repository || (!digest && !tag)) { ignored.push('manifest push without a registry host, repository and digest or tag'); continue; }
    events.push({ source: 'distribution', host, repository: e.target.repository, trigger: 'push', mediaType, ...(digest ? { digest } : {}), ...(tag ? { tag } : {}), ...(e.actor?.name ? { actor: e.actor.name } : {}), ...(e.request?.useragent ? { userAgent: e.request.useragent } : {}) });
  }
  return { events, ignored };
}

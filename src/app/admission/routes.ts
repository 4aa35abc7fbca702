import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { z } from 'zod';
import { ConfigError, type Config } from '../../config.js';
import { httpStatusOf, PatchdError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { Metrics } from '../../lib/metrics.js';
import type { JobQueue } from '../../queue/types.js';
import { AdmissionError } from './errors.js';
import { encodePatch, type ReplaceOperation } from './json-patch.js';
import { jobStoreRecords, type PatchRecords } from './patch-records.js';
import { createAdmissionPolicy, type AdmissionPolicy, type ImageJudgement } from './policy.js';
import { cachedRegistryLookups, type RegistryEndpoint, type RegistryLookups } from './registry-lookups.js';
import { AdmissionReviewSchema, reviewResponse, type AdmissionRequest, type AdmissionResponse } from './review.js';
import { containerImages, imagesIn, reviewsKind } from './workload.js';

export interface AdmissionDependencies {
  /** With an `admission` section. */
  readonly config: Config;
  readonly queue: JobQueue;
  /** One client per configured registry, by name (`connectRegistries`). */
  readonly registries: ReadonlyMap<string, RegistryEndpoint>;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Defaults: the job store's index and the registries' cached, time-bounded lookups. */
  readonly records?: PatchRecords;
  readonly lookups?: RegistryLookups;
}

/** Two objects (an UPDATE's object and oldObject) of etcd's 1.5 MiB each, with room to spare. */
const bodyLimitBytes = 8 * 1024 * 1024;
type Webhook = 'validate' | 'mutate';

/**
 * The admission webhooks, for their own TLS listener: POST /admission/validate
 * and /admission/mutate take an admission.k8s.io/v1 AdmissionReview and answer
 * one with the request's uid. 400 for a body that is not one; every judgement
 * of the images is in the 200 answer (denials as `allowed: false` with a 403
 * status, audit mode's as warnings, mutate's rewrites as a base64 JSONPatch).
 */
export function createAdmissionApp(deps: AdmissionDependencies): Hono<{ Variables: { requestId: string } }> {
  const { config, logger, metrics } = deps;
  const settings = config.admission;
  if (!settings) throw new ConfigError('CONFIG_INVALID', 'the admission webhooks need an admission section in the config');
  const ttlMs = settings.cacheTtlSeconds * 1000;
  const policy = createAdmissionPolicy({
    config, settings,
    records: deps.records ?? jobStoreRecords(deps.queue, { ttlMs }),
    lookups: deps.lookups ?? cachedRegistryLookups(deps.registries, { timeoutMs: settings.lookupTimeoutMs, ttlMs }),
  });

  const app = new Hono<{ Variables: { requestId: string } }>();
  app.use('*', requestId());
  app.post('/admission/:webhook{validate|mutate}', bodyLimit({
    maxSize: bodyLimitBytes,
    onError: (c) => c.json({ error: `body over ${bodyLimitBytes} bytes` }, 413),
  }), async (c) => {
    const started = performance.now();
    const webhook = c.req.param('webhook') as Webhook;
    let json: unknown;
    try {
      json = JSON.parse(await c.req.text());
    } catch (error) {
      throw new AdmissionError('REVIEW_INVALID', `body is not JSON: ${(error as Error).message}`);
    }
    const parsed = AdmissionReviewSchema.safeParse(json);
    if (!parsed.success) throw new AdmissionError('REVIEW_INVALID', `not an AdmissionReview request: ${z.prettifyError(parsed.error)}`);
    const { request } = parsed.data;
    const response = await review(policy, webhook, request, settings.enforce);
    const outcome = !response.allowed ? 'denied' : response.patch ? 'patched' : response.warnings?.length ? 'warned' : 'allowed';
    metrics?.count('patchd_admission_reviews_total', { webhook, outcome });
    logger.info({
      reqId: c.get('requestId'), webhook, uid: request.uid, kind: request.kind.kind, namespace: request.namespace, name: request.name,
      operation: request.operation, outcome, ms: Math.round((performance.now() - started) * 10) / 10,
    }, 'admission review');
    return c.json(reviewResponse(response));
  });

  // Failures become statuses here, as in the main app: a malformed review 400, bugs 500.
  app.onError((error, c) => {
    const status = httpStatusOf(error);
    if (error instanceof PatchdError && error.kind !== 'internal') {
      logger.warn({ code: error.code, kind: error.kind, err: error.message }, 'admission request failed');
      return c.json({ error: error.message, code: error.code }, status);
    }
    logger.error({ err: error }, 'internal error');
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}

/**
 * One review: every container image of the object judged once (an UPDATE's
 * images that the old object already had are not judged again), then the
 * answer: denied with every reason, or allowed with warnings and replacements.
 */
async function review(policy: AdmissionPolicy, webhook: Webhook, request: AdmissionRequest, enforce: boolean): Promise<AdmissionResponse> {
  const { uid } = request;
  const object = request.object;
  if ((request.operation !== 'CREATE' && request.operation !== 'UPDATE') || !object || !reviewsKind(request.kind)) return { uid, allowed: true };
  if (policy.exemptNamespace(request.namespace)) return { uid, allowed: true };

  const kept = request.operation === 'UPDATE' ? imagesIn(request.kind, request.oldObject) : new Set<string>();
  const containers = containerImages(request.kind, object).filter((c) => !kept.has(c.image));
  const judgements = new Map<string, Promise<ImageJudgement>>();
  for (const { image } of containers) if (!judgements.has(image)) judgements.set(image, policy[webhook](image));
  const judged = await Promise.all(containers.map(async (container) => ({ container, judgement: await judgements.get(container.image)! })));

  const denials: string[] = [];
  const warnings = new Set<string>();
  const operations: ReplaceOperation[] = [];
  for (const { container, judgement } of judged) {
    const which = `${container.image} (${container.list} ${container.name ?? `#${container.index}`})`;
    if (judgement.denial) denials.push(`${which}: ${judgement.denial}`);
    if (judgement.warning) warnings.add(judgement.warning);
    if (judgement.replacement && judgement.replacement !== container.image) operations.push({ op: 'replace', path: container.pointer, value: judgement.replacement });
  }
  if (denials.length > 0 && enforce) {
    return { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: `patchd: ${denials.join('; ')}` }, ...(warnings.size ? { warnings: [...warnings] } : {}) };
  }
  for (const denial of denials) warnings.add(`patchd (audit, admission.enforce is false) would deny ${denial}`);
  return {
    uid, allowed: true,
    ...(operations.length ? { patchType: 'JSONPatch' as const, patch: encodePatch(operations) } : {}),
    ...(warnings.size ? { warnings: [...warnings] } : {}),
  };
}

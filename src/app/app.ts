import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { z } from 'zod';
import { registryForHost, repositoryAllowed, type Config } from '../config.js';
import { httpStatusOf, PatchdError } from '../lib/errors.js';
import { isOwnOutput } from './webhooks/events.js';
import { dashboardRoutes } from './dashboard/routes.js';
import type { Logger } from '../lib/log.js';
import { groupCommit } from '../queue/group-commit.js';
import type { JobQueue } from '../queue/types.js';
import type { Metrics } from '../lib/metrics.js';
import { isWebhookSource, receivers } from './webhooks/receive.js';

export interface AppDependencies {
  readonly config: Config;
  readonly queue: JobQueue;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Whether the worker and queue are up, for /readyz. */
  readonly ready?: () => boolean;
  /** Which configured registries answer `/v2/`, for /readyz. */
  readonly registriesReachable?: () => Promise<Record<string, boolean>>;
}

/**
 * The HTTP surface. Webhook routes only verify, validate, enqueue and answer:
 * 202 with job ids, 200 with reasons for deliberately ignored events, 400 with
 * the validation message, 401 for bad secrets or signatures, 403 for hosts
 * that are not configured registries, 413 over the body limit. Patching
 * happens in the worker.
 */
export function createApp(deps: AppDependencies): Hono<{ Variables: { requestId: string } }> {
  const { config, queue, logger, metrics } = deps;
  const enqueue = groupCommit(queue);
  const app = new Hono<{ Variables: { requestId: string } }>();
  // One log line per request with its id (also returned as X-Request-Id); bodies and headers are never logged.
  app.use('*', requestId());
  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    logger.info({ reqId: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - started) * 10) / 10 }, 'request');
  });

  app.post('/webhooks/:source', bodyLimit({
    maxSize: config.webhooks.bodyLimitBytes,
    onError: (c) => c.json({ error: `body over ${config.webhooks.bodyLimitBytes} bytes` }, 413),
  }), async (c) => {
    const source = c.req.param('source');
    if (!isWebhookSource(source)) return c.json({ error: `unknown webhook source ${source}` }, 404);
    const receiver = receivers[source];
    const answer = (status: 200 | 202 | 400 | 401 | 403, outcome: string, body: Record<string, unknown>) => {
      metrics.count('patchd_webhooks_total', { source, outcome });
      return c.json(body, status);
    };
    const raw = new Uint8Array(await c.req.arrayBuffer());
    const header = (name: string) => c.req.header(name);

    const senders = Object.entries(config.registries).filter(([, r]) => r.webhookSecret && receiver.authenticated(header, r.webhookSecret, raw)).map(([name]) => name);
    if (senders.length === 0) return answer(401, 'unauthorized', { error: 'missing or wrong webhook secret or signature' });

    const ignoredDelivery = receiver.ignoredDelivery?.(header);
    if (ignoredDelivery) return answer(200, 'ignored', { ignored: [ignoredDelivery] });

    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
    } catch (error) {
      return answer(400, 'malformed', { error: `body is not JSON: ${(error as Error).message}` });
    }
    const parsed = receiver.schema.safeParse(json);
    if (!parsed.success) return answer(400, 'malformed', { error: z.prettifyError(parsed.error) });

    const received = receiver.events(parsed.data as never);
    const ignored = [...received.ignored];
    const refused: string[] = [];
    const jobs: { id: string; duplicate: boolean; image: string }[] = [];
    for (const event of received.events) {
      const target = registryForHost(config, event.host);
      // Only configured registries, and only the one whose secret signed this delivery, are ever contacted.
      if (!target || !senders.includes(target.name)) { refused.push(`registry host ${event.host} is not configured for this webhook`); continue; }
      const image = `${event.host}/${event.repository}${event.tag ? `:${event.tag}` : ''}${event.digest ? `@${event.digest}` : ''}`;
      const own = isOwnOutput(event, { tagSuffix: target.registry.policy.tagSuffix, ownActors: target.registry.ownActors });
      if (own) { ignored.push(`${image}: ${own}`); continue; }
      if (!repositoryAllowed(target.registry.policy, event.repository)) { ignored.push(`${image}: repository excluded by policy`); continue; }
      if (target.registry.scanner === 'harbor' && event.trigger === 'push') { ignored.push(`${image}: waiting for Harbor's scan (scanner: harbor)`); continue; }
      const { id, created } = await enqueue({
        registry: target.name, repository: event.repository, source: event.source, trigger: event.trigger,
        ...(event.digest ? { digest: event.digest } : {}), ...(event.tag ? { tag: event.tag } : {}),
      });
      jobs.push({ id, duplicate: !created, image });
      // Harbor scanned an original patchd already patched again (its report drives the plan): re-evaluate it, once per scan.
      if (!created && event.trigger === 'scan-completed' && event.digest && target.registry.scanner === 'harbor') {
        const revision = `harbor:${event.scanRevision ?? new Date().toISOString().slice(0, 16)}`;
        const again = await queue.reevaluate({
          registry: target.name, repository: event.repository, digest: event.digest, source: event.source, trigger: 'harbor-scan', revision,
          reason: `Harbor scanned ${image} again (${event.scanRevision ? `report ${event.scanRevision}` : 'no report id'})`, ...(event.tag ? { tag: event.tag } : {}),
        });
        if (again) jobs.push({ id: again.id, duplicate: !again.created, image });
      }
    }
    logger.info({ reqId: c.get('requestId'), source, jobs, ignored, refused }, 'webhook');
    if (jobs.length > 0) return answer(202, 'accepted', { jobs, ignored, refused });
    if (refused.length > 0) return answer(403, 'refused', { error: refused.join('; '), ignored });
    return answer(200, 'ignored', { ignored });
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const started = deps.ready?.() ?? true;
    // A closed or unreachable queue (SQLite shut, Redis down): not ready, so the Service stops sending webhooks here.
    const queueCounts = await queue.counts().catch((error: unknown) => error instanceof Error ? error : new Error(String(error)));
    const registries = (await deps.registriesReachable?.()) ?? {};
    if (queueCounts instanceof Error) {
      logger.warn({ err: queueCounts.message }, 'readyz: the job queue does not answer');
      return c.json({ status: `unready: queue unavailable${queueCounts instanceof PatchdError ? ` (${queueCounts.message})` : ''}`, registries }, 503);
    }
    // An unreachable registry does not make patchd unready: its pushes still queue durably and retry, and
    // admission must keep answering (a readiness failure would take every webhook out of the Service).
    const status = !started ? 'starting' : Object.values(registries).every(Boolean) ? 'ready' : 'degraded: registries unreachable';
    return c.json({ status, queue: queueCounts, registries }, started ? 200 : 503);
  });
  app.get('/jobs', async (c) => {
    const status = c.req.query('status');
    const limit = Number(c.req.query('limit') ?? 100);
    const allowed = ['queued', 'running', 'succeeded', 'skipped', 'dead'] as const;
    if (status && !allowed.includes(status as (typeof allowed)[number])) return c.json({ error: `status must be one of ${allowed.join(', ')}` }, 400);
    return c.json({ jobs: await queue.list({ ...(status ? { status: status as (typeof allowed)[number] } : {}), limit: Number.isFinite(limit) ? limit : 100 }) });
  });
  app.get('/jobs/:id', async (c) => {
    const job = await queue.get(c.req.param('id'));
    return job ? c.json(job) : c.json({ error: 'no such job' }, 404);
  });
  app.get('/metrics', async (c) => {
    const counts = await queue.counts();
    const gauges = Object.fromEntries(Object.entries(counts).map(([status, n]) => [`patchd_jobs{status="${status}"}`, n]));
    return c.text(metrics.render(gauges), 200, { 'content-type': 'text/plain; version=0.0.4' });
  });
  // Read-only pages for operators (and a retry behind the admin token): src/app/dashboard.
  if (config.dashboard.enabled) app.route('/dashboard', dashboardRoutes({ config, queue, logger, ...(deps.registriesReachable ? { registriesReachable: deps.registriesReachable } : {}) }));

  // The one place where failures become statuses: input 400, unsupported 422, upstream 502, unavailable 503, bugs 500.
  app.onError((error, c) => {
    const status = httpStatusOf(error);
    if (error instanceof PatchdError && error.kind !== 'internal') {
      logger.warn({ code: error.code, kind: error.kind, err: error.message }, 'request failed');
      return c.json({ error: error.message, code: error.code }, status);
    }
    logger.error({ err: error }, 'internal error');
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}

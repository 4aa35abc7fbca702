import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { JSX } from 'hono/jsx/jsx-runtime';
import type { Config } from '../../config.js';
import type { Logger } from '../../lib/log.js';
import { QueueError, type Job, type JobQueue } from '../../queue/types.js';
import { fromThisSite, isAdminToken, retryJob } from './admin.js';
import { liveScript, stylesheet } from './assets.js';
import { ExposedPage } from './exposed.js';
import { FailuresPage } from './failures.js';
import { ImagePage } from './image.js';
import { JobsPage, liveJob } from './jobs.js';
import { OverviewPage } from './overview.js';
import { imageName, resultOf, stillExposed } from './results.js';
import { overview } from './stats.js';

export interface DashboardDependencies {
  readonly config: Config;
  readonly queue: JobQueue;
  readonly logger: Logger;
  /** What /readyz reports per registry. */
  readonly registriesReachable?: () => Promise<Record<string, boolean>>;
  /** How often the live list looks for changed jobs; default 1 s. */
  readonly livePollMs?: number;
}

/** How many recent jobs the pages look through (the queue's list() answers at most 1000). */
const window = 1000;

// No inline script or style anywhere: the policy forbids them, so injected markup could not run even if it got in.
const securityHeaders = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

async function page(c: Context, node: JSX.Element, status: 200 | 403 | 404 | 409 = 200): Promise<Response> {
  return c.html(`<!DOCTYPE html>${await node.toString()}`, status, securityHeaders);
}

/**
 * The dashboard, under /dashboard: server-rendered pages (hono/jsx escapes
 * every value), one script for the live list, and one action (retry) behind
 * the admin token. Reads the job store only; registry credentials, webhook
 * secrets and the token are never part of anything it renders.
 */
export function dashboardRoutes(deps: DashboardDependencies): Hono {
  const { config, queue, logger } = deps;
  const adminToken = config.dashboard.adminToken;
  const app = new Hono();
  const recentJobs = async (): Promise<Job[]> => await queue.list({ limit: window });

  app.get('/assets/style.css', (c) => c.body(stylesheet, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'max-age=300' }));
  app.get('/assets/live.js', (c) => c.body(liveScript, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300' }));

  app.get('/', async (c) => {
    const [jobs, counts, registries] = await Promise.all([recentJobs(), queue.counts(), deps.registriesReachable?.() ?? Promise.resolve({})]);
    const hosts = Object.fromEntries(Object.entries(config.registries).map(([name, r]) => [name, new URL(r.url).host]));
    const recent = jobs.filter((j) => j.status === 'succeeded' && resultOf(j).status === 'patched').slice(0, 10);
    return page(c, <OverviewPage totals={overview(jobs, new Date())} counts={counts} registries={registries} hosts={hosts} recent={recent} />);
  });

  app.get('/jobs', async (c) => page(c, <JobsPage jobs={await queue.list({ limit: 100 })} />));

  // Server-sent events: every job whose updatedAt changed since the last look, oldest change first.
  app.get('/jobs/events', (c) => streamSSE(c, async (stream) => {
    const seen = new Map<string, string>();
    for (const job of await queue.list({ limit: 100 })) seen.set(job.id, job.updatedAt);
    let open = true;
    stream.onAbort(() => { open = false; });
    try {
      while (open) {
        await stream.sleep(deps.livePollMs ?? 1000);
        if (!open) break;
        const changed = (await queue.list({ limit: 100 })).filter((j) => seen.get(j.id) !== j.updatedAt).reverse();
        for (const job of changed) {
          seen.set(job.id, job.updatedAt);
          await stream.writeSSE({ event: 'job', id: `${job.id}@${job.updatedAt}`, data: JSON.stringify(liveJob(job)) });
        }
        if (changed.length === 0) await stream.write(': keep-alive\n\n');
      }
    } catch (error) {
      // The queue closed (shutting down) ends the stream; the browser reconnects to whichever patchd answers next.
      if (!(error instanceof QueueError)) logger.warn({ err: (error as Error).message }, 'dashboard live list ended');
    }
  }));

  app.get('/image', async (c) => {
    const registry = c.req.query('registry') ?? '';
    const repository = c.req.query('repository') ?? '';
    const tag = c.req.query('tag');
    const jobs = (await recentJobs()).filter((j) => j.registry === registry && j.repository === repository && (tag === undefined || j.tag === tag));
    return page(c, <ImagePage name={imageName({ registry, repository, ...(tag ? { tag } : {}) })} jobs={jobs} />, jobs.length === 0 ? 404 : 200);
  });

  const failures = async (c: Context, notice?: { text: string; bad?: boolean }, status: 200 | 403 | 404 | 409 = 200) => {
    const [dead, queued] = await Promise.all([queue.list({ status: 'dead', limit: 200 }), queue.list({ status: 'queued', limit: 200 })]);
    return page(c, <FailuresPage dead={dead} retrying={queued.filter((j) => j.lastError)} canRetry={adminToken !== undefined} {...(notice ? { notice } : {})} />, status);
  };
  app.get('/failures', async (c) => {
    const retried = c.req.query('retried');
    return failures(c, retried ? { text: `Queued again as job ${retried}.` } : undefined);
  });

  // A form post from this origin only (Origin checked), and the token in the body: a cross-site page can send neither.
  app.post('/failures/:id/retry', async (c) => {
    if (!fromThisSite(c.req.url, c.req.header('origin'), c.req.header('sec-fetch-site'))) return failures(c, { text: 'Not retried: the form was not sent from this dashboard.', bad: true }, 403);
    const form = await c.req.parseBody();
    if (!isAdminToken(adminToken, form['token'])) {
      logger.warn({ job: c.req.param('id') }, 'dashboard retry refused: missing or wrong admin token');
      return failures(c, { text: adminToken ? 'Not retried: missing or wrong admin token.' : 'Not retried: the dashboard is read-only (no admin token configured).', bad: true }, 403);
    }
    const job = await queue.get(c.req.param('id'));
    if (!job) return failures(c, { text: 'Not retried: no such job.', bad: true }, 404);
    if (job.status !== 'dead') return failures(c, { text: `Not retried: the job is ${job.status}, not failed.`, bad: true }, 409);
    const again = await retryJob(queue, job);
    logger.info({ job: job.id, retry: again.id, created: again.created }, 'dashboard retry');
    return c.redirect(`/dashboard/failures?retried=${encodeURIComponent(again.id)}`, 303);
  });

  app.get('/exposed', async (c) => {
    // Per image, the newest finished job that scanned it.
    const newest = new Map<string, Job>();
    for (const job of await recentJobs()) {
      if ((job.status !== 'succeeded' && job.status !== 'skipped') || !resultOf(job).platforms?.length) continue;
      const key = `${job.registry}\n${job.repository}\n${job.tag ?? ''}`;
      if (!newest.has(key)) newest.set(key, job);
    }
    const images = [...newest.values()].map((job) => ({ job, findings: stillExposed(resultOf(job)) })).filter((i) => i.findings.length > 0);
    return page(c, <ExposedPage images={images} />);
  });

  return app;
}

import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { serve as serveHttp } from '@hono/node-server';
import { Agent, request, type Dispatcher } from 'undici';
import { readAdmissionTls, startAdmissionListener } from '../app/admission/listener.js';
import { createAdmissionApp } from '../app/admission/routes.js';
import { createApp } from '../app/app.js';
import { readConfigFile, type Config } from '../config.js';
import { BuildkitClient } from '../executors/buildkit/client.js';
import { checkDaemon } from '../executors/buildkit/doctor.js';
import { UsageError } from '../lib/errors.js';
import { Metrics } from '../lib/metrics.js';
import { httpLibraryIndex } from '../plan/library-index.js';
import { loadSigner, signingPassword } from '../publish/signing-key.js';
import { startContinuous } from '../continuous/continuous.js';
import { openSqliteQueue } from '../queue/sqlite.js';
import { openRedisQueue } from '../queue/redis.js';
import { connectRegistries, startWorker } from '../worker.js';
import { closeWithin, logLevel, type CliContext } from './context.js';
import { loadAdvisories } from './report.js';

/** `patchd serve`: webhooks in, durable queue, worker; runs until SIGTERM/SIGINT, then finishes running jobs. */
export async function serveCommand(argv: readonly string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } },
    strict: true,
  });
  if (!values.config) throw new UsageError('serve needs --config FILE');
  const logger = ctx.createLogger(logLevel(ctx, values['log-level'], 'info'));
  const config = await readConfigFile(ctx.env, values.config);
  // A missing or bad certificate stops start-up here (CONFIG_*), before anything runs.
  const admissionTls = config.admission ? await readAdmissionTls(config.admission) : undefined;
  const osv = await loadAdvisories(config.advisories.osv.map((p) => resolve(p)));
  if (osv) logger.info({ records: osv.recordCount, paths: config.advisories.osv }, 'advisories loaded');
  let buildkit: BuildkitClient | undefined;
  if (config.buildkit) {
    const address = { address: config.buildkit.address, ...(config.buildkit.tls ? { tls: config.buildkit.tls } : {}) };
    logger.info({ buildkit: await checkDaemon(address) }, 'buildkit ready');
    buildkit = new BuildkitClient(address);
  }
  // A key that cannot be read or decrypted stops start-up here, not every job later.
  const signer = config.signing ? await loadSigner({ keyFile: resolve(config.signing.keyFile), ...signingPassword(ctx.env, config.signing.passwordEnv) }) : undefined;
  if (signer && config.signing) logger.info({ keyFile: config.signing.keyFile }, 'signing patched images (cosign format)');

  const dataDir = resolve(config.dataDir);
  // SQLite in dataDir by default; Redis (BullMQ) when replicas share the queue. The URL (it may hold a password) is never logged.
  const redisQueue = config.queue.redis;
  const queue = redisQueue
    ? await openRedisQueue({ url: redisQueue.url, prefix: redisQueue.prefix, lockMs: redisQueue.lockSeconds * 1000, maxAttempts: config.worker.maxAttempts })
    : openSqliteQueue(join(dataDir, 'queue.sqlite'));
  logger.info(redisQueue ? { queue: 'redis', prefix: redisQueue.prefix, lockSeconds: redisQueue.lockSeconds } : { queue: 'sqlite' }, 'job queue open');
  const recovered = await queue.recoverInterrupted();
  const metrics = new Metrics();
  const dispatcher = new Agent({ connections: 16 });
  // Admission webhooks on their own TLS listener, started before the worker so a port in use fails start-up cleanly.
  const admission = config.admission && admissionTls ? await startAdmissionListener({
    settings: config.admission, tls: admissionTls, logger,
    fetch: createAdmissionApp({ config, queue, logger, metrics, registries: connectRegistries(config, { dispatcher, logger }) }).fetch,
  }) : undefined;
  if (admission) logger.info({ host: config.admission?.host, port: admission.port }, 'admission webhooks serving (TLS)');
  const libraryUrls = Object.fromEntries(Object.entries(config.libraryIndex).filter(([, v]) => v !== undefined)) as Record<string, string>;
  // Continuous patching: watches advisories.osv (reloading it for the worker) and runs the schedule; wakes the worker when it enqueues.
  let wakeWorker = () => {};
  const continuous = await startContinuous({ config, queue, logger, paths: config.advisories.osv.map((p) => resolve(p)), ...(osv ? { osv } : {}), onEnqueued: () => wakeWorker() });
  const worker = startWorker({
    config, queue, logger, metrics, dispatcher, libraryIndex: httpLibraryIndex({ dispatcher, urls: libraryUrls }), osv: continuous.osv, ...(buildkit ? { buildkit } : {}), ...(signer ? { signer } : {}),
    cacheDir: config.cacheDir ? resolve(config.cacheDir) : join(dataDir, 'cache'),
    tmpDir: ctx.tmpDir,
  });
  wakeWorker = worker.wake;
  let started = false;
  const app = createApp({ config, queue, logger, metrics, ready: () => started, registriesReachable: registryProbe(config, dispatcher) });
  const server = serveHttp({ fetch: app.fetch, hostname: config.server.host, port: config.server.port }, (info) => {
    started = true;
    logger.info({ address: info.address, port: info.port, recovered }, 'patchd serving');
  });
  await new Promise<void>((done) => {
    ctx.onStopSignal((signal) => {
      logger.info({ signal }, 'shutting down: no new webhooks, finishing running jobs');
      server.close();
      continuous.stop();
      void admission?.close();
      void worker.stop()
        .then(async () => { await queue.close(); buildkit?.close(); return closeWithin(dispatcher); })
        .finally(done);
    });
  });
  return 0;
}

/** GET /v2/ on every configured registry (200 or 401 means it is there), cached for 10 s. */
function registryProbe(config: Config, dispatcher: Dispatcher): () => Promise<Record<string, boolean>> {
  let cached: { at: number; result: Promise<Record<string, boolean>> } | undefined;
  return () => {
    if (cached && Date.now() - cached.at < 10_000) return cached.result;
    const result = Promise.all(Object.entries(config.registries).map(async ([name, registry]) => {
      try {
        const res = await request(new URL('/v2/', registry.url), { method: 'GET', dispatcher, headersTimeout: 2000, bodyTimeout: 2000 });
        await res.body.dump();
        return [name, res.statusCode === 200 || res.statusCode === 401] as const;
      } catch {
        return [name, false] as const;
      }
    })).then(Object.fromEntries);
    cached = { at: Date.now(), result };
    return result;
  };
}

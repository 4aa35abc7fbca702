import { readFile } from 'node:fs/promises';
import { serve as serveHttp } from '@hono/node-server';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { createApp } from './app/app.js';
import { Metrics } from './lib/metrics.js';
import { loadConfig, type Config } from './config.js';
import { PatchdError } from './lib/errors.js';
import { openSqliteQueue } from './queue/sqlite.js';
import { startWorker } from './worker.js';
import { pino } from 'pino';
import { createLogger, type Logger } from './lib/log.js';
import { createRegistryClient } from './oci/client.js';
import { dockerConfigKeychain, multiKeychain, staticKeychain } from './oci/keychain.js';
import { parseReference } from './oci/reference.js';
import { patchImage, type PatchOutcome, type ProgressEvent } from './pipeline/patch-image.js';
import { httpLibraryIndex } from './plan/library-index.js';
import { loadAdvisories, parsePatchLevel, parsePkgTypes, readReport } from './cli/report.js';
import { scanCommand, scanUsage, UsageError } from './cli/scan.js';
import { BuildkitClient } from './executors/buildkit/client.js';
import { checkDaemon } from './executors/buildkit/doctor.js';

const usage = `patchd — patch container images without rebuilding them

Usage:
  patchd patch -i REF [-r REPORT] [-t TAG] [--pkg-types os,library] [--library-patch-level L] [--dry-run] ...
  patchd scan -i REF [--format table|json|sarif] [--advisories PATH] [-r REPORT]
  patchd serve --config FILE
  patchd doctor [--buildkit-addr ADDR | --config FILE]

Registry credentials: $PATCHD_REGISTRY_USERNAME / $PATCHD_REGISTRY_PASSWORD for the
image's registry, else the docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json).

Options for patch:
  -i, --image REF        image to patch (tag or digest)
  -r, --report FILE|URL  Trivy JSON or Harbor report; without one (and without OSV data
                         for the OS), every package the image's own repositories have
                         a newer version of is patched
      --advisories PATH  OSV records (directory or all.zip; repeatable; default
                         $PATCHD_ADVISORIES, colon-separated)
      --pkg-types T      os, library or os,library [default: os]
      --library-patch-level L
                         patch, minor or major: the biggest version bump a library may
                         take [default: patch]; needs --pkg-types with library
  -t, --tag TAG          tag (or full reference) for the result [default: <tag><suffix>]
      --tag-suffix S     suffix for the result's tag [default: -patched]
      --ignore-errors    skip packages that cannot be patched in-process instead of failing
      --plain-http       speak HTTP, not HTTPS, to the registry (always so for loopback)
      --dry-run          print the plan, push nothing
      --buildkit-addr A  BuildKit daemon: unix:///path or tcp://host:port [default:
                         $PATCHD_BUILDKIT_ADDR or $BUILDKIT_HOST]
      --executor E       auto (in-process; BuildKit for packages whose maintainer
                         scripts must run), inprocess, or buildkit [default: auto]
      --tooling-image R  for images with no package manager of their own: an image
                         with dnf and rpm (rpm roots) or a Debian image with apt
                         (distroless); BuildKit runs its tools on them
      --cache-dir DIR    apt index cache [default: $XDG_CACHE_HOME/patchd or ~/.cache/patchd]
      --log-level LEVEL  pino level [default: info]
  -h, --help             this text

${scanUsage}`;

/** The CLI. The only module that reads process state (argv, env, TTY, exit code). */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(usage);
    return command ? 0 : 2;
  }
  if (command === 'serve') return serveCommand(rest);
  if (command === 'scan') return runScan(rest);
  if (command === 'doctor') return doctorCommand(rest);
  if (command !== 'patch') {
    process.stderr.write(`patchd: unknown command "${command}"\n\n${usage}`);
    return 2;
  }

  let values;
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: {
        image: { type: 'string', short: 'i' },
        report: { type: 'string', short: 'r' },
        advisories: { type: 'string', multiple: true },
        'pkg-types': { type: 'string', default: 'os' },
        'library-patch-level': { type: 'string' },
        'buildkit-addr': { type: 'string' },
        executor: { type: 'string', default: 'auto' },
        'tooling-image': { type: 'string' },
        tag: { type: 'string', short: 't' },
        'tag-suffix': { type: 'string', default: '-patched' },
        'ignore-errors': { type: 'boolean', default: false },
        'plain-http': { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        'cache-dir': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`patchd: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) { process.stdout.write(usage); return 0; }
  if (!values.image) { process.stderr.write(`patchd: -i/--image is required\n\n${usage}`); return 2; }
  let pkgTypes;
  let libraryPatchLevel;
  try {
    pkgTypes = parsePkgTypes(values['pkg-types']);
    libraryPatchLevel = parsePatchLevel(values['library-patch-level'] ?? 'patch');
    if (values['library-patch-level'] && !pkgTypes.library) throw new UsageError('--library-patch-level needs --pkg-types library or os,library');
    if (!['auto', 'inprocess', 'buildkit'].includes(values.executor)) throw new UsageError(`--executor takes auto, inprocess or buildkit (got ${JSON.stringify(values.executor)})`);
  } catch (error) {
    process.stderr.write(`patchd: ${(error as Error).message}\n`);
    return 2;
  }

  const tty = Boolean(process.stderr.isTTY);
  // On a TTY the progress display talks to the user; logs stay quiet unless asked for.
  // Logs go to stderr (pino JSON); stdout carries the human summary only.
  const logger = createLogger({ level: tty && values['log-level'] === 'info' ? 'warn' : values['log-level'], destination: pino.destination({ fd: 2, sync: true }) });
  const dispatcher = new Agent({ connections: 16 });
  const cacheDir = values['cache-dir'] ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'patchd');
  const dockerConfig = join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
  const progress = tty ? new ProgressDisplay() : undefined;
  const buildkitAddr = values['buildkit-addr'] ?? process.env.PATCHD_BUILDKIT_ADDR ?? process.env.BUILDKIT_HOST;
  let buildkitClient: BuildkitClient | undefined;
  try {
    const image = parseReference(values.image);
    if (buildkitAddr && values.executor !== 'inprocess') {
      const report = await checkDaemon({ address: buildkitAddr });
      logger.info({ buildkit: report }, 'buildkit ready');
      buildkitClient = new BuildkitClient({ address: buildkitAddr });
    }
    const report = values.report ? await readReport(values.report, dispatcher) : undefined;
    const osv = report ? undefined : await loadAdvisories(values.advisories ?? (process.env.PATCHD_ADVISORIES ?? '').split(':').filter(Boolean));
    const plainHttp = values['plain-http'];
    // Explicit credentials (for the image's registry) come from the environment, never from argv.
    const username = process.env.PATCHD_REGISTRY_USERNAME;
    const explicit = username ? staticKeychain({ [image.registry]: { username, password: process.env.PATCHD_REGISTRY_PASSWORD ?? '' } }) : undefined;
    const keychain = explicit ? multiKeychain(explicit, dockerConfigKeychain(dockerConfig)) : dockerConfigKeychain(dockerConfig);
    const client = createRegistryClient({ logger, dispatcher, keychain, ...(plainHttp ? { plainHttp: true } : {}) });
    const outcome = await patchImage(
      {
        client, dispatcher, logger, cacheDir, tmpDir: process.env.TMPDIR ?? tmpdir(), libraryIndex: httpLibraryIndex({ dispatcher }),
        ...(buildkitClient ? { buildkit: { client: buildkitClient, keychain, ...(values['tooling-image'] ? { toolingImages: { rpm: values['tooling-image'], deb: values['tooling-image'] } } : {}) } } : {}),
      },
      {
        image, tagSuffix: values['tag-suffix'], ignoreErrors: values['ignore-errors'], dryRun: values['dry-run'], executor: values.executor as 'auto' | 'inprocess' | 'buildkit',
        advisories: { ...(report ? { report } : {}), ...(osv ? { osv } : {}) }, pkgTypes, libraryPatchLevel,
        ...(values.tag ? { target: values.tag } : {}),
        ...(progress ? { onProgress: (e: ProgressEvent) => progress.update(e) } : { onProgress: (e: ProgressEvent) => logger.info(e, 'progress') }),
      },
    );
    progress?.done();
    process.stdout.write(describe(outcome));
    logger.info({ outcome: { ...outcome, platforms: outcome.platforms.map(({ plan, findings, ...p }) => ({ ...p, findings: findings?.length ?? 0, packages: plan?.packages.map(({ candidate: _c, ...rest }) => rest), libraries: plan?.libraries })) } }, 'done');
    return outcome.platforms.some((p) => p.failed.length > 0) && outcome.status !== 'patched' ? 1 : 0;
  } catch (error) {
    progress?.done();
    return reportError(error, logger);
  } finally {
    buildkitClient?.close();
    await dispatcher.close();
  }
}

function reportError(error: unknown, logger: Logger): number {
  if (error instanceof PatchdError) {
    logger.error({ code: error.code, details: error.details }, error.message);
    process.stderr.write(`patchd: ${error.message} [${error.code}]\n`);
    return 1;
  }
  logger.error({ err: error }, 'unexpected failure');
  process.stderr.write(`patchd: unexpected failure: ${(error as Error)?.stack ?? String(error)}\n`);
  return 1;
}

/** The human summary on stdout. */
export function describe(outcome: PatchOutcome): string {
  const lines: string[] = [];
  for (const p of outcome.platforms) {
    const prefix = outcome.platforms.length > 1 || p.platform !== 'single' ? `[${p.platform}] ` : '';
    if (p.skipped) lines.push(`${prefix}skipped: ${p.skipped}`);
    for (const pkg of p.plan?.packages ?? []) lines.push(`${prefix}${pkg.name} ${pkg.from} -> ${pkg.to}  (${pkg.reasons.join(', ')})`);
    for (const h of p.plan?.heldBack ?? []) lines.push(`${prefix}held back: ${h.name} ${h.from} -> ${h.to}: ${h.reason}`);
    for (const u of p.plan?.unavailable ?? []) lines.push(`${prefix}not available: ${u.name}${u.fixedVersion ? ` (needs ${u.fixedVersion})` : ''}: ${u.reason}`);
    for (const u of p.plan?.upgraded ?? []) lines.push(`${prefix}${u.name} ${u.from} -> ${u.to}  (upgraded through BuildKit)`);
    for (const l of p.plan?.libraries ?? []) lines.push(`${prefix}${l.name} (${l.ecosystem}, ${l.location ?? l.path}) ${l.from} -> ${l.to}  (${l.reasons.join(', ')})`);
    for (const k of p.plan?.skipped ?? []) lines.push(`${prefix}not patched: ${k.name} ${k.version} (${k.ecosystem}): ${k.reason}`);
    for (const f of p.failed) lines.push(`${prefix}failed: ${f.name}: ${f.error}`);
  }
  if (outcome.status === 'patched') lines.push(`patched ${outcome.source} -> ${outcome.target} (${outcome.digest})`);
  else if (outcome.status === 'dry-run') lines.push(`dry run: nothing pushed for ${outcome.source}`);
  else if (outcome.platforms.every((p) => p.skipped)) lines.push(`nothing patched in ${outcome.source}`);
  else lines.push(`nothing to patch in ${outcome.source}: it is up to date with its repositories`);
  return `${lines.join('\n')}\n`;
}

/** A one-line, redrawn status on a TTY. */
class ProgressDisplay {
  private readonly started = Date.now();
  update(event: ProgressEvent): void {
    const what = event.stage === 'package' ? `${event.phase} ${event.pkg}` : `${event.stage}${event.detail ? ` ${event.detail}` : ''}`;
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    process.stderr.write(`\r\x1b[2K[${seconds}s] ${what}`);
  }
  done(): void {
    process.stderr.write('\r\x1b[2K');
  }
}

async function runScan(argv: readonly string[]): Promise<number> {
  const dockerConfig = join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
  let logger: Logger | undefined;
  try {
    return await scanCommand(argv, {
      env: process.env,
      stdoutIsTty: Boolean(process.stdout.isTTY),
      write: (text) => process.stdout.write(text),
      createLogger: () => (logger = createLogger({ level: process.env.PATCHD_LOG_LEVEL ?? 'warn', destination: pino.destination({ fd: 2, sync: true }) })),
      createClient: ({ logger: log, dispatcher, registry, plainHttp }) => {
        const username = process.env.PATCHD_REGISTRY_USERNAME;
        const explicit = username ? staticKeychain({ [registry]: { username, password: process.env.PATCHD_REGISTRY_PASSWORD ?? '' } }) : undefined;
        return createRegistryClient({ logger: log, dispatcher, keychain: explicit ? multiKeychain(explicit, dockerConfigKeychain(dockerConfig)) : dockerConfigKeychain(dockerConfig), ...(plainHttp ? { plainHttp: true } : {}) });
      },
      cacheDir: join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'patchd'),
      version: await packageVersion(),
    });
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`patchd: ${(error as Error).message}\n\n${usage}`);
      return 2;
    }
    return reportError(error, logger ?? createLogger({ level: 'error', destination: pino.destination({ fd: 2, sync: true }) }));
  }
}

/** `patchd doctor`: is the BuildKit daemon there, usable by us, new enough? Prints what it found; exit 1 when not. */
async function doctorCommand(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { 'buildkit-addr': { type: 'string' }, config: { type: 'string', short: 'c' } }, strict: true }));
  } catch (error) {
    process.stderr.write(`patchd: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  let address = values['buildkit-addr'] ?? process.env.PATCHD_BUILDKIT_ADDR ?? process.env.BUILDKIT_HOST;
  let tls;
  if (!address && values.config) {
    try {
      const config = loadConfig(process.env, await readFile(values.config, 'utf8'), values.config);
      address = config.buildkit?.address;
      tls = config.buildkit?.tls;
    } catch (error) {
      process.stderr.write(`patchd doctor: ${(error as Error).message}\n`);
      return 1;
    }
  }
  if (!address) { process.stderr.write('patchd doctor: no BuildKit address (--buildkit-addr, $PATCHD_BUILDKIT_ADDR, or buildkit.address in --config)\n'); return 2; }
  try {
    const report = await checkDaemon({ address, ...(tls ? { tls } : {}) });
    process.stdout.write(`buildkit ${report.address}: ${report.version}, diff/merge ok\n`);
    for (const w of report.workers) process.stdout.write(`  worker ${w.id}: ${w.executor ?? '?'} executor, ${w.snapshotter ?? '?'} snapshotter, ${w.platforms.join(' ')}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`patchd doctor: ${(error as Error).message}\n`);
    return 1;
  }
}

async function packageVersion(): Promise<string> {
  try {
    return (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** `patchd serve`: webhooks in, durable queue, worker; runs until SIGTERM/SIGINT. */
async function serveCommand(argv: readonly string[]): Promise<number> {
  let configPath: string | undefined;
  try {
    ({ values: { config: configPath } } = parseArgs({ args: [...argv], options: { config: { type: 'string', short: 'c' } }, strict: true }));
  } catch (error) {
    process.stderr.write(`patchd: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (!configPath) { process.stderr.write(`patchd: serve needs --config FILE\n\n${usage}`); return 2; }
  const logger = createLogger({ level: process.env.PATCHD_LOG_LEVEL ?? 'info' });
  let config;
  try {
    config = loadConfig(process.env, await readFile(configPath, 'utf8'), configPath);
  } catch (error) {
    return reportError(error, logger);
  }
  const dataDir = resolve(config.dataDir);
  const queue = openSqliteQueue(join(dataDir, 'queue.sqlite'));
  const recovered = queue.recoverInterrupted();
  const metrics = new Metrics();
  const dispatcher = new Agent({ connections: 16 });
  let osv;
  try {
    osv = await loadAdvisories(config.advisories.osv.map((p) => resolve(p)));
  } catch (error) {
    queue.close();
    await dispatcher.close();
    return reportError(error, logger);
  }
  if (osv) logger.info({ records: osv.recordCount, paths: config.advisories.osv }, 'advisories loaded');
  let buildkit: BuildkitClient | undefined;
  if (config.buildkit) {
    const address = { address: config.buildkit.address, ...(config.buildkit.tls ? { tls: config.buildkit.tls } : {}) };
    try {
      logger.info({ buildkit: await checkDaemon(address) }, 'buildkit ready');
    } catch (error) {
      queue.close();
      await dispatcher.close();
      return reportError(error, logger);
    }
    buildkit = new BuildkitClient(address);
  }
  const libraryUrls = Object.fromEntries(Object.entries(config.libraryIndex).filter(([, v]) => v !== undefined)) as Record<string, string>;
  const worker = startWorker({
    config, queue, logger, metrics, dispatcher, libraryIndex: httpLibraryIndex({ dispatcher, urls: libraryUrls }), ...(osv ? { osv } : {}), ...(buildkit ? { buildkit } : {}),
    cacheDir: config.cacheDir ? resolve(config.cacheDir) : join(dataDir, 'cache'),
    tmpDir: process.env.TMPDIR ?? tmpdir(),
  });
  let started = false;
  const app = createApp({ config, queue, logger, metrics, ready: () => started, registriesReachable: registryProbe(config, dispatcher) });
  const server = serveHttp({ fetch: app.fetch, hostname: config.server.host, port: config.server.port }, (info) => {
    started = true;
    logger.info({ address: info.address, port: info.port, recovered }, 'patchd serving');
  });
  await new Promise<void>((done) => {
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'shutting down: no new webhooks, finishing running jobs');
      server.close();
      void worker.stop().then(() => { queue.close(); buildkit?.close(); return dispatcher.close(); }).finally(done);
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  return 0;
}

/** GET /v2/ on every configured registry (200 or 401 means it is there), cached for 10 s. */
function registryProbe(config: Config, dispatcher: Agent): () => Promise<Record<string, boolean>> {
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

import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { BuildkitClient } from '../executors/buildkit/client.js';
import { checkDaemon } from '../executors/buildkit/doctor.js';
import { UsageError } from '../lib/errors.js';
import { createRegistryClient } from '../oci/client.js';
import { parseReference } from '../oci/reference.js';
import { patchImage, type PatchOutcome, type ProgressEvent } from '../pipeline/patch-image.js';
import { httpLibraryIndex } from '../plan/library-index.js';
import { closeWithin, commandKeychain, defaultCacheDir, logLevel, type CliContext, type Output } from './context.js';
import { loadAdvisories, parsePatchLevel, parsePkgTypes, readReport } from './report.js';
import { indexesFromFlags, indexOptions, mirrorOptions, mirrorsFromFlags } from './mirrors.js';

const executors = ['auto', 'inprocess', 'buildkit'] as const;
type ExecutorChoice = (typeof executors)[number];

/** `patchd patch`: one image patched and pushed (or planned, with --dry-run); exit 1 when anything failed. */
export async function patchCommand(argv: readonly string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    // Copa's --toolchain-patch-level may stand alone: it then means patch.
    args: argv.map((a, i) => (a === '--toolchain-patch-level' && !/^(patch|minor|major)$/.test(argv[i + 1] ?? '') ? '--toolchain-patch-level=patch' : a)),
    options: {
      image: { type: 'string', short: 'i' },
      report: { type: 'string', short: 'r' },
      advisories: { type: 'string', multiple: true },
      'pkg-types': { type: 'string', default: 'os' },
      'library-patch-level': { type: 'string' },
      'buildkit-addr': { type: 'string' },
      executor: { type: 'string', default: 'auto' },
      'tooling-image': { type: 'string' },
      'go-tooling-image': { type: 'string' },
      'dotnet-tooling-image': { type: 'string' },
      'toolchain-patch-level': { type: 'string' },
      tag: { type: 'string', short: 't' },
      'tag-suffix': { type: 'string', default: '-patched' },
      'ignore-errors': { type: 'boolean', default: false },
      compression: { type: 'string', default: 'gzip' },
      'plain-http': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
      'log-level': { type: 'string' },
      ...mirrorOptions,
      ...indexOptions,
    },
    strict: true,
  });
  if (!values.image) throw new UsageError('-i/--image is required');
  const mirrors = mirrorsFromFlags(values, ctx.env);
  const packageIndexes = indexesFromFlags(values, ctx.env);
  const pkgTypes = parsePkgTypes(values['pkg-types']);
  const libraryPatchLevel = parsePatchLevel(values['library-patch-level'] ?? 'patch');
  if (values['library-patch-level'] && !pkgTypes.library) throw new UsageError('--library-patch-level needs --pkg-types library or os,library');
  const toolchainPatchLevel = values['toolchain-patch-level'];
  if (toolchainPatchLevel !== undefined && !['patch', 'minor', 'major'].includes(toolchainPatchLevel)) throw new UsageError(`--toolchain-patch-level takes patch, minor or major (got ${JSON.stringify(toolchainPatchLevel)})`);
  if (toolchainPatchLevel && !pkgTypes.library) throw new UsageError('--toolchain-patch-level needs --pkg-types library or os,library');
  const executor = values.executor as ExecutorChoice;
  if (!executors.includes(executor)) throw new UsageError(`--executor takes auto, inprocess or buildkit (got ${JSON.stringify(values.executor)})`);
  const compression = values.compression;
  if (compression !== 'gzip' && compression !== 'zstd') throw new UsageError(`--compression takes gzip or zstd (got ${JSON.stringify(compression)})`);
  const image = parseReference(values.image);

  // On a TTY the progress display talks to the user; logs stay quiet unless asked for.
  const tty = ctx.stderr.isTTY;
  const logger = ctx.createLogger(logLevel(ctx, values['log-level'], tty ? 'warn' : 'info'));
  const progress = tty ? new ProgressDisplay(ctx.stderr) : undefined;
  const dispatcher = new Agent({ connections: 16 });
  const buildkitAddr = values['buildkit-addr'] ?? ctx.env['PATCHD_BUILDKIT_ADDR'] ?? ctx.env['BUILDKIT_HOST'];
  let buildkitClient: BuildkitClient | undefined;
  try {
    if (buildkitAddr && executor !== 'inprocess') {
      logger.info({ buildkit: await checkDaemon({ address: buildkitAddr }) }, 'buildkit ready');
      buildkitClient = new BuildkitClient({ address: buildkitAddr });
    }
    const report = values.report ? await readReport(values.report, dispatcher) : undefined;
    const osv = report ? undefined : await loadAdvisories(values.advisories ?? (ctx.env['PATCHD_ADVISORIES'] ?? '').split(':').filter(Boolean));
    const keychain = commandKeychain(ctx, image.registry);
    const client = createRegistryClient({ logger, dispatcher, keychain, ...(values['plain-http'] ? { plainHttp: true } : {}) });
    const toolingImage = values['tooling-image'];
    const goToolingImage = values['go-tooling-image'];
    const dotnetToolingImage = values['dotnet-tooling-image'];
    const toolingImages = { ...(toolingImage ? { rpm: toolingImage, deb: toolingImage } : {}), ...(goToolingImage ? { go: goToolingImage } : {}), ...(dotnetToolingImage ? { dotnet: dotnetToolingImage } : {}) };
    const outcome = await patchImage(
      {
        client, dispatcher, logger, cacheDir: values['cache-dir'] ?? defaultCacheDir(ctx), tmpDir: ctx.tmpDir,
        libraryIndex: httpLibraryIndex({ dispatcher, indexes: packageIndexes }), packageIndexes, mirrors,
        ...(buildkitClient ? { buildkit: { client: buildkitClient, keychain, ...(Object.keys(toolingImages).length > 0 ? { toolingImages } : {}) } } : {}),
      },
      {
        image, tagSuffix: values['tag-suffix'], ignoreErrors: values['ignore-errors'], dryRun: values['dry-run'], executor, compression,
        advisories: { ...(report ? { report } : {}), ...(osv ? { osv } : {}) }, pkgTypes, libraryPatchLevel,
        ...(toolchainPatchLevel ? { toolchainPatchLevel: parsePatchLevel(toolchainPatchLevel) } : {}),
        ...(values.tag ? { target: values.tag } : {}),
        onProgress: progress ? (e: ProgressEvent) => progress.update(e) : (e: ProgressEvent) => logger.info(e, 'progress'),
      },
    );
    progress?.done();
    ctx.stdout.write(describe(outcome));
    logger.info({ outcome: { ...outcome, platforms: outcome.platforms.map(({ plan, findings, ...p }) => ({ ...p, findings: findings?.length ?? 0, packages: plan?.packages.map(({ candidate: _c, ...rest }) => rest), libraries: plan?.libraries })) } }, 'done');
    return outcome.platforms.some((p) => p.failed.length > 0) && outcome.status !== 'patched' ? 1 : 0;
  } finally {
    progress?.done();
    buildkitClient?.close();
    await closeWithin(dispatcher);
  }
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
  private shown = false;
  constructor(private readonly out: Output) {}
  update(event: ProgressEvent): void {
    const what = event.stage === 'package' ? `${event.phase} ${event.pkg}` : `${event.stage}${event.detail ? ` ${event.detail}` : ''}`;
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    this.out.write(`\r\x1b[2K[${seconds}s] ${what}`);
    this.shown = true;
  }
  done(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}

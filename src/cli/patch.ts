import { mkdir, stat, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import { BuildkitClient } from '../executors/buildkit/client.js';
import { checkDaemon } from '../executors/buildkit/doctor.js';
import { UsageError } from '../lib/errors.js';
import { createRegistryClient, type RegistryClient } from '../oci/client.js';
import { parseReference } from '../oci/reference.js';
import { patchImage, type PatchOptions, type PatchOutcome, type ProgressEvent } from '../pipeline/patch-image.js';
import { ociLayoutClient } from '../publish/oci-layout.js';
import { openVexDocument } from '../publish/openvex.js';
import { copaTagSuffix } from '../publish/tag-suffix.js';
import { loadSigner, signingPassword } from '../publish/signing-key.js';
import { httpLibraryIndex } from '../plan/library-index.js';
import { closeWithin, commandKeychain, defaultCacheDir, logLevel, type CliContext, type Output } from './context.js';
import { loadAdvisories, parsePatchLevel, parsePkgTypes, readReport } from './report.js';
import { indexesFromFlags, indexOptions, mirrorOptions, mirrorsFromFlags } from './mirrors.js';
import { checkBuildkitAddress, CopaFlagError, parseGoDuration, parsePlatforms, parseProgressMode, refusedCopaOptions, refuseCopaFlags, type ProgressMode } from './copa.js';

const executors = ['auto', 'inprocess', 'buildkit'] as const;
type ExecutorChoice = (typeof executors)[number];

/** `patchd patch`: one image patched and pushed (or planned, with --dry-run); exit 1 when anything failed. */
export async function patchCommand(argv: readonly string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: copaArgv(argv),
    options: {
      image: { type: 'string', short: 'i' },
      report: { type: 'string', short: 'r' },
      advisories: { type: 'string', multiple: true },
      'pkg-types': { type: 'string', default: 'os' },
      'library-patch-level': { type: 'string' },
      'buildkit-addr': { type: 'string' },
      // Copa's name for it, and its TLS files for a tcp:// daemon.
      addr: { type: 'string', short: 'a' },
      cacert: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      executor: { type: 'string', default: 'auto' },
      'tooling-image': { type: 'string' },
      'go-tooling-image': { type: 'string' },
      'dotnet-tooling-image': { type: 'string' },
      'toolchain-patch-level': { type: 'string' },
      tag: { type: 'string', short: 't' },
      'tag-suffix': { type: 'string', default: 'patched' },
      'ignore-errors': { type: 'boolean', default: false },
      compression: { type: 'string', default: 'gzip' },
      'plain-http': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      // Copa v0.14's flags (see the README's Copa table).
      timeout: { type: 'string', default: '5m' },
      platform: { type: 'string', multiple: true },
      format: { type: 'string', short: 'f', default: 'openvex' },
      output: { type: 'string', short: 'o' },
      push: { type: 'boolean', short: 'p', default: false },
      'oci-dir': { type: 'string' },
      progress: { type: 'string', default: 'auto' },
      debug: { type: 'boolean', default: false },
      'working-folder': { type: 'string', short: 'w' },
      ...refusedCopaOptions,
      'sign-key': { type: 'string' },
      'cache-dir': { type: 'string' },
      'log-level': { type: 'string' },
      ...mirrorOptions,
      ...indexOptions,
    },
    strict: true,
  });
  refuseCopaFlags(values);
  if (!values.image) throw new UsageError('-i/--image is required');
  const mirrors = mirrorsFromFlags(values, ctx.env);
  const packageIndexes = indexesFromFlags(values, ctx.env);
  const pkgTypes = parsePkgTypes(values['pkg-types']);
  const libraryPatchLevel = parsePatchLevel(values['library-patch-level'] ?? 'patch');
  // As Copa: a level other than the default patch needs library packages selected.
  if (libraryPatchLevel !== 'patch' && !pkgTypes.library) throw new UsageError('--library-patch-level needs --pkg-types library or os,library');
  const toolchainPatchLevel = values['toolchain-patch-level'];
  if (toolchainPatchLevel !== undefined && !['patch', 'minor', 'major'].includes(toolchainPatchLevel)) throw new UsageError(`--toolchain-patch-level takes patch, minor or major (got ${JSON.stringify(toolchainPatchLevel)})`);
  if (toolchainPatchLevel && !pkgTypes.library) throw new UsageError('--toolchain-patch-level needs --pkg-types library or os,library');
  const executor = values.executor as ExecutorChoice;
  if (!executors.includes(executor)) throw new UsageError(`--executor takes auto, inprocess or buildkit (got ${JSON.stringify(values.executor)})`);
  const compressionFlag = values.compression;
  if (compressionFlag !== 'gzip' && compressionFlag !== 'zstd') throw new UsageError(`--compression takes gzip or zstd (got ${JSON.stringify(compressionFlag)})`);
  const compression: 'gzip' | 'zstd' = compressionFlag; // a const, so that run() below sees the narrowed type
  const image = parseReference(values.image);
  if (values.report && !/^https?:\/\//.test(values.report) && (await stat(values.report).catch(() => undefined))?.isDirectory()) {
    throw new UsageError(`-r ${values.report} is a directory: Copa's per-platform report directories are not supported; give one report (it applies to every platform of an index), or OSV data with --advisories`);
  }
  const timeout = values.timeout;
  const timeoutMs = parseGoDuration(timeout);
  if (timeoutMs <= 0) throw new UsageError(`--timeout must be longer than 0 (got ${JSON.stringify(timeout)})`);
  const platforms = parsePlatforms(values.platform);
  // Copa's rule for -t: a full reference has ':' or '@'; anything else is a tag.
  if (values.tag !== undefined && !/[:@]/.test(values.tag) && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(values.tag)) {
    throw new UsageError(`-t ${values.tag} is neither a tag nor a full reference (registry/repository:tag)`);
  }
  if (values.format !== 'openvex') throw new UsageError(`-f/--format takes openvex, the only format Copa writes (got ${JSON.stringify(values.format)})`);
  const ociDir = values['oci-dir'];
  if (ociDir !== undefined && values.push) throw new UsageError('--oci-dir writes the result to a directory instead of pushing it: drop --push (patchd pushes whenever --oci-dir is not given)');
  if (ociDir !== undefined && values['dry-run']) throw new UsageError('--oci-dir and --dry-run: a dry run writes nothing, drop one of them');
  const progressMode = parseProgressMode(values.progress);
  if (values['buildkit-addr'] !== undefined && values.addr !== undefined) throw new UsageError('-a/--addr and --buildkit-addr are the same option: give one');
  const buildkitAddr = values.addr ?? values['buildkit-addr'] ?? ctx.env['PATCHD_BUILDKIT_ADDR'] ?? ctx.env['BUILDKIT_HOST'];
  if (buildkitAddr) checkBuildkitAddress(buildkitAddr);
  const buildkitTls = { ...(values.cacert ? { caFile: values.cacert } : {}), ...(values.cert ? { certFile: values.cert } : {}), ...(values.key ? { keyFile: values.key } : {}) };
  if (Object.keys(buildkitTls).length > 0 && !buildkitAddr?.startsWith('tcp://')) throw new UsageError('--cacert/--cert/--key are for a tcp:// BuildKit address (-a tcp://host:port)');
  const buildkitAddress = { address: buildkitAddr ?? '', ...(Object.keys(buildkitTls).length > 0 ? { tls: buildkitTls } : {}) };
  const tmpDir = values['working-folder'] ?? ctx.tmpDir;
  if (values['working-folder']) await mkdir(tmpDir, { recursive: true });

  // On a TTY the progress display talks to the user; logs stay quiet unless asked for.
  const tty = progressMode === 'tty' || (progressMode === 'auto' && ctx.stderr.isTTY);
  const defaultLevel = values.debug ? 'debug' : progressMode === 'quiet' ? 'error' : tty || progressMode !== 'auto' ? 'warn' : 'info';
  const logger = ctx.createLogger(logLevel(ctx, values['log-level'], defaultLevel));
  const progress = progressOutput(progressMode, tty, ctx.stderr);
  const dispatcher = new Agent({ connections: 16 });
  let buildkitClient: BuildkitClient | undefined;
  // Copa's --timeout: the whole patch, from resolving the image to the last push.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CopaFlagError('PATCH_TIMEOUT', `patch exceeded timeout ${timeout}; nothing more is pushed (raise it with --timeout, e.g. --timeout 30m)`)), timeoutMs);
  });
  try {
    return await Promise.race([timedOut, run()]);
  } catch (error) {
    // Cut what is still in flight, so that the abandoned run pushes nothing more.
    if (error instanceof CopaFlagError) { buildkitClient?.close(); await dispatcher.destroy().catch(() => undefined); }
    throw error;
  } finally {
    clearTimeout(timer);
    progress?.done();
    buildkitClient?.close();
    await closeWithin(dispatcher);
  }

  async function run(): Promise<number> {
    logger.debug({ image: values.image, target: values.tag, tagSuffix: copaTagSuffix(values['tag-suffix']), platforms, timeoutMs, ociDir, progress: progressMode, executor, buildkit: buildkitAddr, workingFolder: tmpDir }, 'options');
    if (buildkitAddr && executor !== 'inprocess') {
      logger.info({ buildkit: await checkDaemon(buildkitAddress) }, 'buildkit ready');
      buildkitClient = new BuildkitClient(buildkitAddress);
    }
    const report = values.report ? await readReport(values.report, dispatcher) : undefined;
    const osv = report ? undefined : await loadAdvisories(values.advisories ?? (ctx.env['PATCHD_ADVISORIES'] ?? '').split(':').filter(Boolean));
    const keychain = commandKeychain(ctx, image.registry);
    const registry = createRegistryClient({ logger, dispatcher, keychain, ...(values['plain-http'] ? { plainHttp: true } : {}) });
    // --oci-dir: everything the pipeline would push lands in the layout instead.
    const client: RegistryClient = ociDir !== undefined ? ociLayoutClient(registry, ociDir, { source: image }) : registry;
    const toolingImage = values['tooling-image'];
    const goToolingImage = values['go-tooling-image'];
    const dotnetToolingImage = values['dotnet-tooling-image'];
    const toolingImages = { ...(toolingImage ? { rpm: toolingImage, deb: toolingImage } : {}), ...(goToolingImage ? { go: goToolingImage } : {}), ...(dotnetToolingImage ? { dotnet: dotnetToolingImage } : {}) };
    const outcome = await patchImage(
      {
        client, dispatcher, logger, cacheDir: values['cache-dir'] ?? defaultCacheDir(ctx), tmpDir,
        libraryIndex: httpLibraryIndex({ dispatcher, indexes: packageIndexes }), packageIndexes, mirrors,
        ...(buildkitClient ? { buildkit: { client: buildkitClient, keychain, ...(Object.keys(toolingImages).length > 0 ? { toolingImages } : {}) } } : {}),
        // --sign-key: cosign's signature on the result; the password (if the key has one) from PATCHD_SIGNING_PASSWORD.
        ...(values['sign-key'] ? { signer: await loadSigner({ keyFile: values['sign-key'], ...signingPassword(ctx.env) }) } : {}),
      },
      {
        image, tagSuffix: copaTagSuffix(values['tag-suffix']), ignoreErrors: values['ignore-errors'], dryRun: values['dry-run'], executor, compression,
        advisories: { ...(report ? { report } : {}), ...(osv ? { osv } : {}) }, pkgTypes, libraryPatchLevel,
        ...(toolchainPatchLevel ? { toolchainPatchLevel: parsePatchLevel(toolchainPatchLevel) } : {}),
        ...(values.tag ? { target: values.tag } : {}),
        ...platformOption(platforms),
        onProgress: progress ? (e: ProgressEvent) => progress.update(e) : progressMode === 'auto' ? (e: ProgressEvent) => logger.info(e, 'progress') : () => {},
      },
    );
    progress?.done();
    ctx.stdout.write(describe(outcome));
    if (ociDir !== undefined && outcome.status === 'patched') ctx.stdout.write(`written to the OCI layout ${ociDir} as ${outcome.target?.split(':').at(-1)}\n`);
    if (values.output !== undefined) await writeVex(values.output, outcome, ctx.stderr);
    if (platforms && outcome.platforms.length === 1 && outcome.platforms[0]!.platform === 'single') {
      ctx.stderr.write(`--platform ${platforms.join(',')} does not apply: ${values.image} is a single-platform image, patched as a whole (as Copa does)\n`);
    }
    logger.info({ outcome: { ...outcome, platforms: outcome.platforms.map(({ plan, findings, ...p }) => ({ ...p, findings: findings?.length ?? 0, packages: plan?.packages.map(({ candidate: _c, ...rest }) => rest), libraries: plan?.libraries })) } }, 'done');
    return outcome.platforms.some((p) => p.failed.length > 0) && outcome.status !== 'patched' ? 1 : 0;
  }
}

/**
 * Copa's (pflag's) argument forms parseArgs does not take as they are:
 * --toolchain-patch-level may stand alone (it then means patch), and
 * `--tag-suffix -hotfix` takes a value that starts with a dash.
 */
function copaArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--toolchain-patch-level' && !/^(patch|minor|major)$/.test(argv[i + 1] ?? '')) out.push('--toolchain-patch-level=patch');
    else if (a === '--tag-suffix' && argv[i + 1]?.startsWith('-')) out.push(`--tag-suffix=${argv[++i]}`);
    else out.push(a);
  }
  return out;
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
  else if (outcome.reason) lines.push(`nothing pushed for ${outcome.source}: ${outcome.reason}`);
  else if (outcome.platforms.every((p) => p.skipped)) lines.push(`nothing patched in ${outcome.source}`);
  else lines.push(`nothing to patch in ${outcome.source}: it is up to date with its repositories`);
  for (const note of outcome.notes ?? []) lines.push(`note: ${note}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Copa's `-f openvex -o FILE`: the OpenVEX document of the fixes the patch
 * verified (the one attached to the image as a referrer). As Copa, no file
 * when nothing was patched or no fix of a named vulnerability was verified;
 * patchd says so on stderr.
 */
async function writeVex(file: string, outcome: PatchOutcome, stderr: Output): Promise<void> {
  if (outcome.status !== 'patched' || !outcome.target) {
    stderr.write(`no OpenVEX document written to ${file}: nothing was patched\n`);
    return;
  }
  const target = parseReference(outcome.target);
  const document = openVexDocument(outcome, { repository: { registry: target.registry, repository: target.repository }, tooling: 'patchd' });
  if (document.statements.length === 0) {
    stderr.write(`no OpenVEX document written to ${file}: no fix of a vulnerability named by the report or advisories was verified\n`);
    return;
  }
  await writeFile(file, `${JSON.stringify(document, null, 2)}\n`);
}

/** Copa's --platform, typed against PatchOptions so that the option cannot be dropped unnoticed. */
function platformOption(platforms: string[] | undefined): Pick<PatchOptions, 'platforms'> {
  return platforms ? { platforms } : {};
}

interface Progress {
  update(event: ProgressEvent): void;
  done(): void;
}

/**
 * Copa's --progress: tty (and auto on a terminal) redraws one status line;
 * plain writes a line per step; rawjson a JSON object per step (patchd's
 * events, not BuildKit's SolveStatus); quiet nothing. auto off a terminal
 * leaves the steps to the JSON log (info level).
 */
function progressOutput(mode: ProgressMode, tty: boolean, out: Output): Progress | undefined {
  if (tty) return new ProgressDisplay(out);
  const started = Date.now();
  const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
  if (mode === 'plain') return { update: (e) => out.write(`[${seconds()}s] ${describeEvent(e)}\n`), done: () => {} };
  if (mode === 'rawjson') return { update: (e) => out.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`), done: () => {} };
  return undefined;
}

function describeEvent(event: ProgressEvent): string {
  return event.stage === 'package' ? `${event.phase} ${event.pkg}` : `${event.stage}${event.detail ? ` ${event.detail}` : ''}`;
}

/** A one-line, redrawn status on a TTY. */
class ProgressDisplay implements Progress {
  private readonly started = Date.now();
  private shown = false;
  constructor(private readonly out: Output) {}
  update(event: ProgressEvent): void {
    const what = describeEvent(event);
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    this.out.write(`\r\x1b[2K[${seconds}s] ${what}`);
    this.shown = true;
  }
  done(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}

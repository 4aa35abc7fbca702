import { Readable } from 'node:stream';
import { request } from 'undici';
import { PatchdError } from '../../lib/errors.js';
import { indexAuthorization } from '../../plan/library-index.js';
import type { PlannedLibrary } from '../../plan/types.js';
import { readGoBuildInfo } from '../../scan/inventory/readers/go-buildinfo.js';
import type { InstalledPackage } from '../../scan/inventory/types.js';
import { image, type LlbState } from '../buildkit/llb.js';
import { goSteps, type GoEnvironment, type GoModuleUpdate, type GoRebuild } from '../buildkit/strategies/go.js';
import type { LibraryExecutor, LibraryInstallContext, LibraryInstallResult } from '../library/types.js';
import { buildArguments, toolchainForStdlib, toolchainOf } from './build-settings.js';
import { GoError } from './errors.js';
import { checkImagePath, checkModule, checkSum, isPackagePath, proxyUrl } from './module-path.js';
import { builderArchitecture } from '../buildkit/platform.js';

/** What installInProcess worked out for the BuildKit steps of the same job. */
interface Prepared {
  readonly updates: GoModuleUpdate[];
  readonly rebuilds: GoRebuild[];
  readonly env: GoEnvironment;
  readonly tooling: string;
}

type Failure = { library: PlannedLibrary; error: Error };

/**
 * Go modules. Nothing is installed in-process: a go.mod requirement moves
 * with `go get` in its module root, and a binary's dependency is fixed by
 * rebuilding the binary from the exact module version it was built from
 * (the proxy's zip, checked against the h1: sum its build info records) with
 * the same recorded flags and toolchain. Both run in a Go tooling image in
 * the job's one BuildKit build. Here each planned library is sorted into one
 * of the two, every value the go command will see is checked, and a binary
 * that cannot be rebuilt ((devel) source, a VCS checkout, a build patchd
 * cannot reproduce) fails with why before anything runs.
 */
export const goExecutor: LibraryExecutor = {
  ecosystem: 'go',

  async installInProcess(ctx, libraries): Promise<LibraryInstallResult> {
    const failed: Failure[] = [];
    const deferred: { library: PlannedLibrary; why: string }[] = [];
    const fail = (group: readonly PlannedLibrary[], error: Error) => { for (const library of group) failed.push({ library, error }); };
    const tooling = ctx.toolingImages?.go;
    if (!tooling) {
      fail(libraries, new GoError('GO_TOOLING_NOT_CONFIGURED', 'Go module updates and binary rebuilds run the go command in a Go tooling image through BuildKit: configure one (buildkit.toolingImages.go, or --go-tooling-image with --buildkit-addr)'));
      return { applied: [], deferred: [], failed, bytesDownloaded: 0 };
    }
    const proxy = ctx.indexes.goProxy;
    if (indexAuthorization(proxy)) {
      fail(libraries, new GoError('GO_PROXY_CREDENTIALS', 'the Go proxy is configured with credentials, which the go command in BuildKit would carry in its build definition: not supported yet'));
      return { applied: [], deferred: [], failed, bytesDownloaded: 0 };
    }
    const env: GoEnvironment = { proxy: proxy.url, modToolchain: ctx.toolchainPatchLevel ? 'auto' : 'local' };
    const updates: GoModuleUpdate[] = [];
    const rebuilds: GoRebuild[] = [];

    for (const [target, group] of Map.groupBy(libraries, (l) => `${originOf(ctx, l)}\0${l.path}`)) {
      const origin = target.slice(0, target.indexOf('\0')) as 'go.mod' | 'binary';
      try {
        if (origin === 'go.mod') {
          updates.push(moduleUpdate(ctx, group));
          for (const library of group) deferred.push({ library, why: 'go get runs in a Go tooling image' });
        } else {
          rebuilds.push(await rebuildOf(ctx, group));
          for (const library of group) deferred.push({ library, why: 'the binary is rebuilt by the go command in a Go tooling image' });
        }
      } catch (error) {
        fail(group, error instanceof PatchdError ? error : new GoError('GO_REQUEST_INVALID', (error as Error).message, { cause: error }));
      }
    }
    if (deferred.length > 0) prepared.set(ctx, { updates, rebuilds, env, tooling });
    return { applied: [], deferred, failed, bytesDownloaded: 0 };
  },

  buildkitSteps(state: LlbState, _libraries, ctx): LlbState {
    const job = prepared.get(ctx);
    if (!job) return state;
    prepared.delete(ctx);
    // The toolchain runs on the builder's own platform and cross-compiles (GOOS/GOARCH as recorded).
    const tooling = image(job.tooling, { platform: { os: 'linux', architecture: builderArchitecture() }, name: `pull Go tooling ${job.tooling}` });
    return goSteps(state, tooling, job, job.env);
  },
};

const prepared = new WeakMap<LibraryInstallContext, Prepared>();

/** Where a planned Go library lives: a go.mod requirement, or a module compiled into a binary (the default, as the inventory has it). */
function originOf(ctx: LibraryInstallContext, library: PlannedLibrary): 'go.mod' | 'binary' {
  const record = recordOf(ctx, library);
  if (record?.goOrigin) return record.goOrigin;
  return /(^|\/)go\.mod$/.test(library.path) ? 'go.mod' : 'binary';
}

function recordOf(ctx: LibraryInstallContext, library: PlannedLibrary): InstalledPackage | undefined {
  return ctx.inventory.packages.find((p) => p.ecosystem === 'go' && p.name === library.name && p.path === library.path && p.version === library.from);
}

function moduleUpdate(ctx: LibraryInstallContext, group: readonly PlannedLibrary[]): GoModuleUpdate {
  const first = group[0]!;
  const declared = first.location ?? (first.path.includes('/') ? first.path.slice(0, first.path.lastIndexOf('/')) : '.');
  const root = declared === '.' || declared === '' ? '.' : resolvedDirectory(ctx, checkImagePath(declared, 'module root'));
  if (ctx.base.stat(root === '.' ? 'go.mod' : `${root}/go.mod`)?.type !== 'file') throw new GoError('GO_REQUEST_INVALID', `/${root}/go.mod is not a file in the image`);
  const requirements = group.map((l) => {
    if (l.name === 'stdlib' || l.name === 'toolchain' || l.name === 'go') throw new GoError('GO_REQUEST_INVALID', `${l.path}: ${l.name} is not a module requirement`);
    return checkModule(l.name, l.to);
  });
  return { root, requirements };
}

/** A directory with every symlink on the way resolved inside the image (the tooling sees /target, not the image's /). */
function resolvedDirectory(ctx: LibraryInstallContext, path: string): string {
  const real = ctx.base.realpath(path);
  if (real === undefined || ctx.base.stat(real)?.type !== 'directory') throw new GoError('GO_REQUEST_INVALID', `/${path} is not a directory in the image`);
  return real === '' ? '.' : checkImagePath(real, 'module root');
}

/** The binary's build info read again, its source checked to be on the proxy, and the rebuild's arguments assembled. */
async function rebuildOf(ctx: LibraryInstallContext, group: readonly PlannedLibrary[]): Promise<GoRebuild> {
  const declared = checkImagePath(group[0]!.path, 'binary');
  const path = ctx.base.realpath(declared);
  const entry = path === undefined ? undefined : ctx.base.stat(path);
  if (!path || !entry || (entry.type !== 'file' && entry.type !== 'hardlink')) throw new GoError('GO_REQUEST_INVALID', `/${declared} is not a file in the image`);
  const bytes = await ctx.base.readFile(path);
  const read = bytes ? await readGoBuildInfo(Readable.from([bytes])) : { kind: 'none' as const };
  if (read.kind !== 'go') throw new GoError('GO_BUILDINFO_UNREADABLE', `/${path} carries no Go build info patchd can read${read.kind === 'old-go' ? ` (${read.reason})` : ''}`);
  const info = read.info;
  const main = info.main;
  const revision = info.settings.get('vcs.revision');
  if (!main?.path || !main.version || main.version === '(devel)' || !main.sum) {
    const what = main?.version && main.version !== '(devel)' ? `${main.path} ${main.version}` : `${main?.path || info.path} (devel)`;
    throw new GoError('GO_SOURCE_UNAVAILABLE', `/${path} was built from ${what} outside the module proxy${revision ? `, a VCS checkout at revision ${revision}` : ''}: there is no released module zip to rebuild it from`);
  }
  checkModule(main.path, main.version);
  const sum = checkSum(main.sum, `${main.path}@${main.version}`);
  if (!isPackagePath(info.path) || !(info.path === main.path || info.path.startsWith(`${main.path}/`))) {
    throw new GoError('GO_REQUEST_INVALID', `/${path}: main package ${JSON.stringify(info.path)} is not inside module ${main.path}`);
  }
  const { flags, env } = buildArguments(info.settings);
  if (env.includes('CGO_ENABLED=1')) {
    const goarch = env.find((e) => e.startsWith('GOARCH='))?.slice('GOARCH='.length);
    if (goarch && goarch !== builderArchitecture()) throw new GoError('GO_BUILD_UNSUPPORTED', `/${path} was built with cgo for ${goarch}: cross-compiling cgo needs a C cross toolchain patchd does not have`);
  }
  const stdlib = group.find((l) => l.name === 'stdlib');
  const toolchain = stdlib ? toolchainForStdlib(stdlib.to) : toolchainOf(info.goVersion);
  const requirements = group.filter((l) => l.name !== 'stdlib').map((l) => {
    if (l.name === main.path) throw new GoError('GO_REQUEST_INVALID', `/${path} is built from ${main.path} itself: its main module cannot be moved by go get`);
    return checkModule(l.name, l.to);
  });
  await checkOnProxy(ctx, main.path, main.version, path);
  ctx.logger.info({ binary: path, module: `${main.path}@${main.version}`, sum, toolchain, requirements, flags, env }, 'Go binary will be rebuilt from the module proxy');
  return { path, module: main.path, version: main.version, sum, package: info.path, toolchain, flags, env, requirements };
}

/** The proxy must serve the version the binary was built from, or there is nothing to rebuild from (a clear refusal, not a failed build). */
async function checkOnProxy(ctx: LibraryInstallContext, module: string, version: string, path: string): Promise<void> {
  const url = proxyUrl(ctx.indexes.goProxy.url, module, version, 'info');
  let response;
  try {
    response = await request(url, { method: 'GET', dispatcher: ctx.dispatcher, headers: { 'user-agent': 'patchd' }, headersTimeout: 30_000, bodyTimeout: 30_000 });
  } catch (error) {
    throw new GoError('GO_PROXY_UNREACHABLE', `${url}: ${(error as Error).message}`, { cause: error });
  }
  const text = await response.body.text();
  if (response.statusCode === 404 || response.statusCode === 410) {
    throw new GoError('GO_SOURCE_UNAVAILABLE', `/${path} was built from ${module}@${version}, which the module proxy does not serve (${response.statusCode}): nothing to rebuild it from`);
  }
  if (response.statusCode !== 200) throw new GoError('GO_PROXY_UNREACHABLE', `${url}: HTTP ${response.statusCode}`);
  let served: unknown;
  try { served = JSON.parse(text); } catch { served = undefined; }
  if ((served as { Version?: unknown } | undefined)?.Version !== version) throw new GoError('GO_PROXY_INVALID', `${url} did not describe ${module}@${version}`);
}

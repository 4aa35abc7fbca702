import semver from 'semver';
import type { ImageFilesystem } from '../../image/filesystem.js';
import type { EntryMeta } from '../../image/layer-builder.js';
import type { PlannedLibrary } from '../../plan/types.js';
import type { LlbState } from '../buildkit/llb.js';
import { npmInstall, type NpmGlobalInstall, type NpmProjectInstall } from '../buildkit/strategies/npm.js';
import type { LibraryExecutor, LibraryInstallContext, LibraryInstallResult } from '../library/types.js';
import { NpmError } from './errors.js';
import { binMap, formatJsonDocument, parseJsonDocument, updateLockfile, type JsonDocument, type LockedVersion } from './lockfile.js';
import { findNpmTooling, foreignPackageManager, placeOf, type NpmTooling, type PackagePlace } from './project.js';
import { downloadTarball, fetchManifest, type RegistryManifest } from './registry.js';
import { imageNodeModules, unmetDependencies, type ImageNodeModules } from './resolution.js';
import { readTarball, writeTarball } from './tarball.js';

type Failed = LibraryInstallResult['failed'][number];
type Deferred = LibraryInstallResult['deferred'][number];

interface Candidate {
  readonly library: PlannedLibrary;
  readonly place: PackagePlace;
  readonly manifest: RegistryManifest;
}

/** What `buildkitSteps` runs for the libraries `installInProcess` deferred, prepared while the image could still be read. */
interface FallbackPlan {
  readonly tooling: NpmTooling;
  readonly registry: string;
  readonly projects: Map<string, NpmProjectInstall & { readonly libraries: PlannedLibrary[] }>;
  readonly globals: Map<string, NpmGlobalInstall & { readonly libraries: PlannedLibrary[] }>;
}

const fallbackPlans = new WeakMap<LibraryInstallContext, FallbackPlan>();

/**
 * npm packages: app dependencies (`<app>/node_modules/...`) and globally
 * installed packages. In-process when exact: the new version's dependencies
 * already resolve, from where it sits, to installed versions in range; then its
 * verified tarball replaces the package directory (as npm unpacks it, no
 * lifecycle scripts) and package-lock.json and node_modules/.package-lock.json
 * record the registry's integrity. Otherwise npm itself runs in BuildKit with
 * `overrides`, as Copa does.
 */
export const npmExecutor: LibraryExecutor = {
  ecosystem: 'npm',

  async installInProcess(ctx, libraries) {
    const failed: Failed[] = [];
    const deferred: Deferred[] = [];
    const candidates: Candidate[] = [];
    const manifests = new Map<string, Promise<RegistryManifest>>();
    for (const library of libraries) {
      try {
        const place = admit(ctx, library);
        const key = `${library.name}@${library.to}`;
        let pending = manifests.get(key);
        if (!pending) manifests.set(key, (pending = fetchManifest({ index: ctx.indexes.npm, dispatcher: ctx.dispatcher, name: library.name, version: library.to })));
        const manifest = await pending;
        checkPlatform(ctx, library, manifest);
        candidates.push({ library, place, manifest });
      } catch (error) {
        failed.push({ library, error: asError(error) });
      }
    }

    // In-process only where every dependency is met; a deferral can unmeet another's, so repeat until stable.
    const view = imageNodeModules(ctx.base, ctx.inventory.packages.filter((p) => p.ecosystem === 'npm'));
    let exact = ctx.preferBuildkit ? [] : [...candidates];
    if (ctx.preferBuildkit) for (const c of candidates) deferred.push({ library: c.library, why: `${c.library.name}@${c.library.to} in ${c.place.dir}: --executor buildkit` });
    for (let changed = true; changed;) {
      changed = false;
      view.planned = new Map(exact.map((c) => [`${c.place.dir}/package.json`, { name: c.library.name, version: c.library.to }]));
      for (const c of [...exact]) {
        const why = await whyNotExact(view, c);
        if (!why) continue;
        exact = exact.filter((x) => x !== c);
        deferred.push({ library: c.library, why: `${c.library.name}@${c.library.to} in ${c.place.dir}: ${why}` });
        changed = true;
      }
    }

    const applied: PlannedLibrary[] = [];
    let bytesDownloaded = 0;
    for (const [root, group] of Map.groupBy(exact, (c) => c.place.root)) {
      const result = await installIntoProject(ctx, root, group);
      applied.push(...result.applied);
      failed.push(...result.failed);
      bytesDownloaded += result.bytesDownloaded;
    }

    const fallback = await planFallback(ctx, deferred);
    failed.push(...fallback.failed);
    if (fallback.plan) fallbackPlans.set(ctx, fallback.plan);
    return { applied, deferred: fallback.deferred, failed, bytesDownloaded };
  },

  buildkitSteps(state: LlbState, libraries: readonly PlannedLibrary[], ctx: LibraryInstallContext): LlbState {
    const plan = fallbackPlans.get(ctx);
    const wanted = new Set(libraries);
    const pick = <T extends { libraries: PlannedLibrary[] }>(m: Map<string, T>) => [...m.values()].filter((x) => x.libraries.some((l) => wanted.has(l)));
    if (!plan || libraries.some((l) => ![...plan.projects.values(), ...plan.globals.values()].some((x) => x.libraries.includes(l)))) {
      throw new NpmError('NPM_INTERNAL', 'npm BuildKit steps were asked for libraries installInProcess did not defer');
    }
    return npmInstall(state, { node: plan.tooling.node, npmCli: plan.tooling.npmCli, registry: plan.registry, projects: pick(plan.projects), globals: pick(plan.globals) });
  },
};

/** The seeds' rules and the plan's facts, checked before anything is fetched. */
function admit(ctx: LibraryInstallContext, library: PlannedLibrary): PackagePlace {
  if (!validName(library.name)) throw new NpmError('NPM_REQUEST_INVALID', `${JSON.stringify(library.name)} is not an npm package name`);
  if (!semver.valid(library.to)) throw new NpmError('NPM_REQUEST_INVALID', `${library.name}: ${JSON.stringify(library.to)} is not a version npm can install`);
  if (library.name === 'npm' || library.name === 'corepack') {
    throw new NpmError('NPM_CORE_TOOLING', `${library.name} is core Node.js tooling: its own dependencies are not all on the public registry and patching it breaks npm, so it is never patched`);
  }
  const place = placeOf(library.path);
  if (!place || place.name !== library.name) throw new NpmError('NPM_PACKAGE_MISSING', `${library.path} is not the package.json of ${library.name} inside a node_modules directory`);
  const installed = ctx.inventory.packages.find((p) => p.ecosystem === 'npm' && p.path === library.path);
  if (!installed || ctx.base.entryAt(place.dir)?.type !== 'directory') throw new NpmError('NPM_PACKAGE_MISSING', `${library.name} is not installed at ${place.dir}`);
  if (installed.version !== library.from) throw new NpmError('NPM_PACKAGE_MISSING', `${library.name} at ${place.dir} is ${installed.version}, not ${library.from}`);
  const foreign = foreignPackageManager(ctx.base, place.root, place);
  if (foreign) throw new NpmError('NPM_PROJECT_UNSUPPORTED', foreign);
  if (installed.direct && !installed.global) {
    throw new NpmError('NPM_DIRECT_DEPENDENCY', `${library.name} is a direct dependency of ${place.root || '.'}/package.json: npm overrides only patch transitive dependencies (EOVERRIDE); update package.json instead`);
  }
  return place;
}

/** Why the version cannot be placed exactly where the old one is, or undefined. */
async function whyNotExact(view: ImageNodeModules, c: Candidate): Promise<string | undefined> {
  const bundled = c.manifest.bundleDependencies ?? c.manifest.bundledDependencies;
  if (bundled === true || (Array.isArray(bundled) && bundled.length > 0)) return 'it bundles dependencies, which npm installs from the tarball';
  const unmet = await unmetDependencies(view, c.place.dir, c.manifest);
  if (unmet.length === 0) return undefined;
  return `its dependencies are not all installed: ${unmet.map((u) => u.why).join('; ')}`;
}

/**
 * One project (app root or global prefix): its lockfiles are read first (a
 * broken one fails its packages before anything is written), then each
 * package is downloaded, verified and unpacked over its old directory, then
 * the lockfiles are written once with every change.
 */
async function installIntoProject(ctx: LibraryInstallContext, root: string, group: readonly Candidate[]): Promise<{ applied: PlannedLibrary[]; failed: Failed[]; bytesDownloaded: number }> {
  const failed: Failed[] = [];
  const applied: PlannedLibrary[] = [];
  let bytesDownloaded = 0;
  let lockfiles: { path: string; doc: JsonDocument; meta: EntryMeta }[];
  try {
    lockfiles = await readLockfiles(ctx.base, root);
  } catch (error) {
    return { applied, failed: group.map((c) => ({ library: c.library, error: asError(error) })), bytesDownloaded };
  }
  const hidden = ctx.base.entryAt(join(root, 'node_modules/.package-lock.json'));
  const changed = new Set<JsonDocument>();
  for (const c of group) {
    const what = `${c.library.name}@${c.library.to}`;
    let tarball;
    try {
      tarball = await downloadTarball({ index: ctx.indexes.npm, dispatcher: ctx.dispatcher, manifest: c.manifest, tmpDir: ctx.tmpDir });
    } catch (error) {
      failed.push({ library: c.library, error: asError(error) });
      continue;
    }
    try {
      bytesDownloaded += tarball.size;
      const contents = await readTarball(tarball.path, what, new Set());
      if (contents.manifest['name'] !== c.library.name || typeof contents.manifest['version'] !== 'string' || !semver.eq(contents.manifest['version'], c.library.to, true)) {
        throw new NpmError('NPM_TARBALL_INVALID', `${what}: the tarball's package.json says ${String(contents.manifest['name'])}@${String(contents.manifest['version'])}`);
      }
      // npm trusts its hidden lockfile only while no package folder is newer than it: keep the new files at its time.
      // Bin targets are executable, whether the registry's metadata (pacote) or the package.json (bin-links) names them.
      const bin = binMap(c.library.name, contents.manifest['bin']) ?? {};
      const binTargets = new Set([...Object.values(binMap(c.library.name, c.manifest.bin) ?? {}), ...Object.values(bin)]);
      const mtime = hidden?.mtime;
      const owner = ownerOf(ctx.base, c.place.dir);
      replaceDirectory(ctx, c.place.dir, contents, owner, mtime);
      await writeTarball({ builder: ctx.builder, path: tarball.path, what, dest: c.place.dir, binTargets, contents, owner, ...(mtime ? { mtime } : {}) });
      linkBins(ctx, c.place, bin, owner);
      const locked: LockedVersion = {
        version: c.library.to, resolved: tarball.resolved, integrity: tarball.integrity, manifest: contents.manifest,
        ...(c.manifest.deprecated ? { deprecated: c.manifest.deprecated } : {}), ...(c.manifest.hasInstallScript ? { hasInstallScript: true } : {}),
      };
      for (const lock of lockfiles) {
        if (updateLockfile(lock.doc.data, c.place.location, locked)) changed.add(lock.doc);
        else ctx.logger.warn({ lockfile: lock.path, location: c.place.location }, 'npm lockfile has no entry for the patched package; left as it is');
      }
      applied.push(c.library);
      const scripts = (contents.manifest['scripts'] ?? {}) as Record<string, unknown>;
      if (locked.hasInstallScript || ['preinstall', 'install', 'postinstall'].some((k) => typeof scripts[k] === 'string')) {
        ctx.logger.warn({ name: c.library.name, to: c.library.to, dir: c.place.dir }, 'npm package has install scripts, which are not run (as npm --ignore-scripts): a native addon is not rebuilt');
      }
      ctx.logger.info({ name: c.library.name, from: c.library.from, to: c.library.to, dir: c.place.dir, integrity: tarball.integrity }, 'npm package installed in-process');
    } catch (error) {
      failed.push({ library: c.library, error: asError(error) });
    } finally {
      await tarball.remove();
    }
  }
  for (const lock of lockfiles) {
    if (changed.has(lock.doc)) await ctx.builder.addFile(lock.path, lock.meta, Buffer.from(formatJsonDocument(lock.doc)));
  }
  return { applied, failed, bytesDownloaded };
}

async function readLockfiles(fs: ImageFilesystem, root: string): Promise<{ path: string; doc: JsonDocument; meta: EntryMeta }[]> {
  const out = [];
  for (const name of ['npm-shrinkwrap.json', 'package-lock.json', 'node_modules/.package-lock.json']) {
    const path = join(root, name);
    const entry = fs.entryAt(path);
    if (entry?.type !== 'file') continue;
    const text = (await fs.readFile(path))?.toString('utf8');
    if (text === undefined) continue;
    out.push({ path, doc: parseJsonDocument(text, path), meta: { mode: entry.mode, uid: entry.uid, gid: entry.gid, ...(entry.mtime ? { mtime: entry.mtime } : {}) } });
  }
  return out;
}

/**
 * The old version's files go: the directory becomes opaque, unless it holds
 * nested `node_modules` (other packages' places, kept), in which case each old
 * entry beside it is whited out, or made opaque where the new version has a
 * directory of the same name.
 */
function replaceDirectory(ctx: LibraryInstallContext, dir: string, contents: Awaited<ReturnType<typeof readTarball>>, owner: { uid: number; gid: number }, mtime: Date | undefined): void {
  const meta = { mode: 0o755, ...owner, ...(mtime ? { mtime } : {}) };
  const old = ctx.base.readdir(dir);
  if (!old.includes('node_modules')) {
    ctx.builder.addOpaqueDirectory(dir, meta);
    return;
  }
  ctx.builder.addDirectory(dir, meta);
  for (const name of old) {
    if (name === 'node_modules') continue;
    const path = `${dir}/${name}`;
    if (contents.directories.has(name) && ctx.base.entryAt(path)?.type === 'directory') ctx.builder.addOpaqueDirectory(path, meta);
    else if (!contents.directories.has(name) && !contents.files.has(name)) ctx.builder.addWhiteout(path);
  }
}

/**
 * npm's bin links: `node_modules/.bin/<cmd>` → `../<name>/<path>` for a
 * project, `<prefix>/bin/<cmd>` → `../lib/node_modules/<name>/<path>` for a
 * global package. Links the old version had that the new one lacks go.
 */
function linkBins(ctx: LibraryInstallContext, place: PackagePlace, bin: Record<string, string>, owner: { uid: number; gid: number }): void {
  const binDir = place.global ? `${place.root.replace(/\/?lib$/, '')}/bin`.replace(/^\//, '') : `${place.modulesDir}/.bin`;
  const prefix = place.global ? `../lib/node_modules/${place.name}` : `../${place.name}`;
  const existing = new Map<string, string>();
  for (const name of ctx.base.readdir(binDir)) {
    const entry = ctx.base.entryAt(`${binDir}/${name}`);
    if (entry?.type === 'symlink' && entry.linkname !== undefined) existing.set(name, entry.linkname);
  }
  const ours = (target: string) => target === prefix || target.startsWith(`${prefix}/`);
  if (Object.keys(bin).length > 0 && ctx.base.stat(binDir)?.type !== 'directory') ctx.builder.addDirectory(binDir, { mode: 0o755, ...owner });
  for (const [command, path] of Object.entries(bin)) {
    const target = `${prefix}/${path}`;
    if (existing.get(command) !== target) ctx.builder.addSymlink(`${binDir}/${command}`, target, { mode: 0o777, ...owner });
  }
  for (const [command, target] of existing) {
    if (ours(target) && !(command in bin)) ctx.builder.addWhiteout(`${binDir}/${command}`);
  }
}

/**
 * The deferred libraries, checked for what npm in BuildKit needs (the image's
 * own npm and node, a package.json to put overrides in, no credentials to
 * leak into the build definition) and prepared for `buildkitSteps`.
 */
async function planFallback(ctx: LibraryInstallContext, deferred: readonly Deferred[]): Promise<{ deferred: Deferred[]; failed: Failed[]; plan?: FallbackPlan }> {
  if (deferred.length === 0) return { deferred: [], failed: [] };
  const failed: Failed[] = [];
  const kept: Deferred[] = [];
  const fail = (d: Deferred, error: Error) => failed.push({ library: d.library, error });
  const tooling = findNpmTooling(ctx.base);
  if (!tooling) {
    for (const d of deferred) fail(d, new NpmError('NPM_NOT_IN_IMAGE', `${d.why}; npm would have to install it, and the image has no npm and node (looked for node in /usr/local/bin, /usr/bin and npm-cli.js beside them)`));
    return { deferred: [], failed };
  }
  if (ctx.indexes.npm.credentials) {
    for (const d of deferred) fail(d, new NpmError('NPM_CREDENTIALS_UNSUPPORTED', `${d.why}; npm would have to install it in BuildKit, and patchd does not put the npm registry's credentials into a build`));
    return { deferred: [], failed };
  }
  const plan: FallbackPlan = { tooling, registry: ctx.indexes.npm.url, projects: new Map(), globals: new Map() };
  const manifests = new Map<string, JsonDocument>();
  for (const d of deferred) {
    const place = placeOf(d.library.path)!;
    const spec = { name: d.library.name, version: d.library.to };
    if (place.global) {
      const prefix = `/${place.root.replace(/\/?lib$/, '')}`;
      const g = plan.globals.get(prefix) ?? { prefix, packages: [], libraries: [] };
      plan.globals.set(prefix, { ...g, packages: [...g.packages, spec], libraries: [...g.libraries, d.library] });
      kept.push(d);
      continue;
    }
    if (/^(usr\/local\/lib|usr\/lib|opt\/[^/]+\/lib)$/.test(place.root)) {
      fail(d, new NpmError('NPM_PROJECT_UNSUPPORTED', `${d.why}; it is a dependency inside a global package (${place.dir}), where npm overrides do not apply`));
      continue;
    }
    try {
      const manifestPath = join(place.root, 'package.json');
      let project = manifests.get(place.root);
      if (!project) {
        const entry = ctx.base.entryAt(manifestPath);
        const text = entry?.type === 'file' ? (await ctx.base.readFile(manifestPath))?.toString('utf8') : undefined;
        if (text === undefined) throw new NpmError('NPM_PROJECT_UNSUPPORTED', `${d.why}; ${place.root || '/'} has no package.json to put npm overrides in`);
        project = parseJsonDocument(text, manifestPath);
        manifests.set(place.root, project);
      }
      addOverride(project, d.library);
      const existing = plan.projects.get(place.root);
      plan.projects.set(place.root, {
        dir: `/${place.root}`, packageJson: formatJsonDocument(project),
        omit: omitted(ctx, place.root, project.data), packages: [...(existing?.packages ?? []), spec], libraries: [...(existing?.libraries ?? []), d.library],
      });
      kept.push(d);
    } catch (error) {
      fail(d, asError(error));
    }
  }
  return { deferred: kept, failed, ...(kept.length > 0 ? { plan } : {}) };
}

/**
 * `"<name>@<installed>": "<fixed>"`: npm applies an override keyed by a
 * version only to edges whose range includes it, so other copies of the
 * package at other versions in the tree stay as they are.
 */
function addOverride(doc: JsonDocument, library: PlannedLibrary): void {
  const current = doc.data['overrides'];
  const overrides: Record<string, unknown> = current && typeof current === 'object' && !Array.isArray(current) ? { ...(current as Record<string, unknown>) } : {};
  const key = `${library.name}@${library.from}`;
  const existing = overrides[key];
  overrides[key] = existing && typeof existing === 'object' && !Array.isArray(existing) ? { ...(existing as Record<string, unknown>), '.': library.to } : library.to;
  doc.data['overrides'] = overrides;
}

/** `--omit=dev` when the image was built without its devDependencies (none of them is installed). */
function omitted(ctx: LibraryInstallContext, root: string, pkg: Record<string, unknown>): ('dev')[] {
  const dev = pkg['devDependencies'];
  if (!dev || typeof dev !== 'object') return [];
  const names = Object.keys(dev);
  return names.length > 0 && names.every((n) => !ctx.base.stat(join(root, `node_modules/${n}/package.json`))) ? ['dev'] : [];
}

function checkPlatform(ctx: LibraryInstallContext, library: PlannedLibrary, manifest: RegistryManifest): void {
  const arch = nodeArch[ctx.platform.architecture] ?? ctx.platform.architecture;
  const refuses = (list: readonly string[] | undefined, value: string) => {
    if (!Array.isArray(list) || list.length === 0) return false;
    if (list.includes(`!${value}`)) return true;
    const positive = list.filter((v) => !v.startsWith('!'));
    return positive.length > 0 && !positive.includes(value);
  };
  if (refuses(manifest.os, ctx.platform.os) || refuses(manifest.cpu, arch)) {
    throw new NpmError('NPM_PLATFORM_UNSUPPORTED', `${library.name}@${library.to} is for os ${JSON.stringify(manifest.os ?? [])} cpu ${JSON.stringify(manifest.cpu ?? [])}, not ${ctx.platform.os}/${arch} (EBADPLATFORM)`);
  }
}

/** OCI architecture names → Node's process.arch. */
const nodeArch: Record<string, string> = { amd64: 'x64', arm64: 'arm64', arm: 'arm', '386': 'ia32', ppc64le: 'ppc64', s390x: 's390x', riscv64: 'riscv64', mips64le: 'mips64el' };

function ownerOf(fs: ImageFilesystem, dir: string): { uid: number; gid: number } {
  const entry = fs.entryAt(dir);
  return { uid: entry?.uid ?? 0, gid: entry?.gid ?? 0 };
}

function validName(name: string): boolean {
  return name.length <= 214 && /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/i.test(name);
}

function join(root: string, path: string): string {
  return root === '' ? path : `${root}/${path}`;
}

function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new NpmError('NPM_INTERNAL', String(error));
}

import { compareNuGetVersions } from '../../versions/nuget.js';
import { readAssemblyVersions } from './assembly-version.js';
import { selectAssets } from './assets.js';
import { libraryKey, nameOf, readDepsJson, rewriteDepsJson, versionOf, type DepsJson, type DepsJsonChange } from './deps-json.js';
import { DotnetError } from './errors.js';
import { nearestFramework, parseFramework } from './frameworks.js';
import type { NupkgArchive } from './nupkg.js';
import { parseNuspec, satisfiesRange, type Nuspec } from './nuspec.js';

/**
 * The one update of a .NET app both executors run (in-process, and in the
 * BuildKit step's container): given the app's deps.json, which of its files
 * exist, and the verified .nupkg of each new version, it decides which DLLs
 * replace which, and writes the new deps.json. Copa's rules: only DLLs the app
 * already has are replaced (a version that needs one it lacks is refused, not
 * half-installed), and deps.json says exactly what the app then holds.
 */
export interface DotnetPackageUpdate {
  readonly name: string;
  readonly from: string;
  readonly to: string;
  readonly nupkg: NupkgArchive;
  /** Base64 SHA-512 of the .nupkg, already checked against the source's. */
  readonly sha512: string;
}

export interface DotnetAppUpdate {
  /** The rewritten deps.json; undefined when no package could be updated. */
  readonly depsJson?: Buffer;
  /** Files to write, root-relative: the new DLLs over the old ones. */
  readonly files: readonly { readonly path: string; readonly data: Buffer; readonly source: string }[];
  readonly applied: readonly { readonly name: string; readonly from: string; readonly to: string; readonly folder?: string; readonly replaced: readonly string[] }[];
  readonly failed: readonly { readonly name: string; readonly error: DotnetError }[];
}

/** How the updater sees the app: which root-relative paths are regular files. */
export interface DotnetAppView {
  isFile(path: string): Promise<boolean>;
}

const maxAssemblyBytes = 256 * 2 ** 20;
const targetEntryKeys = new Set(['dependencies', 'runtime', 'resources']);

export async function updateDotnetApp(input: {
  readonly depsPath: string;
  readonly depsText: string;
  readonly app: DotnetAppView;
  readonly packages: readonly DotnetPackageUpdate[];
}): Promise<DotnetAppUpdate> {
  const { depsPath, depsText, app } = input;
  const appDir = depsPath.includes('/') ? depsPath.slice(0, depsPath.lastIndexOf('/')) : '';
  const inApp = (p: string) => (appDir ? `${appDir}/${p}` : p);
  const failed: { name: string; error: DotnetError }[] = [];
  let deps: DepsJson;
  try {
    deps = readDepsJson(depsText, depsPath);
  } catch (error) {
    if (!(error instanceof DotnetError)) throw error;
    return { files: [], applied: [], failed: input.packages.map((p) => ({ name: p.name, error })) };
  }
  const runtimeTarget = deps.targets[deps.runtimeTarget]!;

  interface Prepared {
    update: DotnetPackageUpdate; key: string; nuspec: Nuspec; folder?: string;
    files: { path: string; data: Buffer; source: string }[];
    runtime: Record<string, { assemblyVersion: string; fileVersion?: string }>;
    resources: Record<string, { locale: string }>;
  }
  const prepared: Prepared[] = [];
  for (const update of input.packages) {
    try {
      const key = libraryKey(deps, update.name, update.from);
      if (!key || !runtimeTarget[key]) throw new DotnetError('DEPS_JSON_INVALID', `${depsPath} lists no package ${update.name}/${update.from} in ${deps.runtimeTarget}`);
      const extra = Object.keys(runtimeTarget[key]!).filter((k) => !targetEntryKeys.has(k));
      if (extra.length > 0) throw new DotnetError('DOTNET_UNSUPPORTED', `${update.name} ${update.from} has ${extra.join(', ')} assets in ${depsPath}: only managed runtime and resource assemblies are swapped in place`);
      const nuspec = await readNuspec(update);
      const selection = selectAssets(update.nupkg.names, deps);
      if (selection.incompatible) throw new DotnetError('DOTNET_UNSUPPORTED', `${update.name} ${update.to} has no assemblies for ${deps.runtimeTarget}`);
      if (selection.unsupported.length > 0) {
        throw new DotnetError('DOTNET_UNSUPPORTED', `${update.name} ${update.to} ships ${selection.unsupported.length} RID-specific or native asset(s) (${selection.unsupported.slice(0, 3).join(', ')}): only managed DLLs are swapped in place`);
      }
      // The seeds' rule: replace only DLLs that exist; a version that needs another is not installed halfway.
      const missing: string[] = [];
      for (const asset of selection.runtime) if (!(await app.isFile(inApp(asset.appPath)))) missing.push(asset.appPath);
      if (missing.length > 0) throw new DotnetError('DOTNET_WOULD_ADD', `${update.name} ${update.to} needs ${missing.join(', ')}, which ${appDir || '/'} does not have; patchd replaces DLLs, it does not add them`);
      const files: Prepared['files'] = [];
      const runtime: Prepared['runtime'] = {};
      for (const asset of selection.runtime) {
        const data = await update.nupkg.read(asset.entry, maxAssemblyBytes);
        const versions = readAssemblyVersions(data);
        if (!versions) throw new DotnetError('NUPKG_INVALID', `${update.name} ${update.to}: ${asset.path} is not a .NET assembly`);
        runtime[asset.path] = versions;
        files.push({ path: inApp(asset.appPath), data, source: asset.path });
      }
      // Satellites only for the cultures the app was published with.
      const resources: Prepared['resources'] = {};
      for (const asset of selection.resources) {
        if (!(await app.isFile(inApp(asset.appPath)))) continue;
        files.push({ path: inApp(asset.appPath), data: await update.nupkg.read(asset.entry, maxAssemblyBytes), source: asset.path });
        resources[asset.path] = { locale: asset.locale! };
      }
      prepared.push({ update, key, nuspec, ...(selection.folder ? { folder: selection.folder } : {}), files, runtime, resources });
    } catch (error) {
      if (!(error instanceof DotnetError)) throw error;
      failed.push({ name: update.name, error });
    }
  }

  // Dependencies are judged against the app as it will be: the other updates that go ahead included.
  let ready = prepared;
  for (;;) {
    const versions = new Map<string, string>();
    for (const key of Object.keys(runtimeTarget)) versions.set(nameOf(key).toLowerCase(), versionOf(key));
    for (const p of ready) versions.set(p.update.name.toLowerCase(), p.update.to);
    const still: Prepared[] = [];
    for (const p of ready) {
      const problem = unmetDependency(p, deps, versions);
      if (problem) failed.push({ name: p.update.name, error: new DotnetError('DOTNET_WOULD_ADD', problem) });
      else still.push(p);
    }
    if (still.length === ready.length) break;
    ready = still;
  }

  const changes: DepsJsonChange[] = ready.map((p) => {
    const dependencies = dependenciesOf(p, deps, runtimeTarget, ready);
    return { key: p.key, to: p.update.to, sha512: p.update.sha512, entry: { ...(dependencies ? { dependencies } : {}), runtime: p.runtime, resources: p.resources } };
  });
  const files = ready.flatMap((p) => p.files);
  const applied = ready.map((p) => ({ name: p.update.name, from: p.update.from, to: p.update.to, ...(p.folder ? { folder: p.folder } : {}), replaced: p.files.map((f) => f.path) }));
  if (changes.length === 0) return { files: [], applied: [], failed };
  return { depsJson: Buffer.from(rewriteDepsJson(depsText, changes), 'utf8'), files, applied, failed };
}

async function readNuspec(update: DotnetPackageUpdate): Promise<Nuspec> {
  const names = update.nupkg.names.filter((n) => !n.includes('/') && n.toLowerCase().endsWith('.nuspec'));
  if (names.length !== 1) throw new DotnetError('NUPKG_INVALID', `${update.name} ${update.to}: the package has ${names.length} .nuspec files at its root`);
  const nuspec = parseNuspec((await update.nupkg.read(names[0]!, 4 * 2 ** 20)).toString('utf8'));
  if (nuspec.id.toLowerCase() !== update.name.toLowerCase()) throw new DotnetError('NUPKG_INVALID', `asked for ${update.name} ${update.to}, the package is ${nuspec.id}`);
  let same: boolean;
  try { same = compareNuGetVersions(nuspec.version, update.to) === 0; } catch { same = false; }
  if (!same) throw new DotnetError('NUPKG_INVALID', `asked for ${update.name} ${update.to}, the package is version ${nuspec.version}`);
  return nuspec;
}

/** The nuspec's dependency group for the app's framework (NuGet's nearest, as for assets). */
function dependencyGroup(nuspec: Nuspec, deps: DepsJson): Nuspec['dependencyGroups'][number]['dependencies'] {
  const groups = nuspec.dependencyGroups;
  const chosen = nearestFramework(deps.framework, groups.filter((g) => g.targetFramework !== ''), (g) => parseFramework(g.targetFramework));
  if (chosen) return chosen.pick.dependencies;
  return groups.find((g) => g.targetFramework === '')?.dependencies ?? [];
}

function unmetDependency(p: { update: DotnetPackageUpdate; nuspec: Nuspec }, deps: DepsJson, versions: ReadonlyMap<string, string>): string | undefined {
  for (const d of dependencyGroup(p.nuspec, deps)) {
    const have = versions.get(d.id.toLowerCase());
    if (have === undefined) return `${p.update.name} ${p.update.to} depends on ${d.id} ${d.range}, which the app does not have: patchd does not add packages`;
    let ok: boolean;
    try { ok = satisfiesRange(have, d.range); } catch (error) {
      if (error instanceof DotnetError) throw error;
      ok = false;
    }
    if (!ok) return `${p.update.name} ${p.update.to} depends on ${d.id} ${d.range}; the app has ${have}`;
  }
  return undefined;
}

/** deps.json's `dependencies` of the new entry: the group's ids, spelled as the app's entries spell them, at the versions the app will have. */
function dependenciesOf(p: { update: DotnetPackageUpdate; nuspec: Nuspec }, deps: DepsJson, target: DepsJson['targets'][string], ready: readonly { update: DotnetPackageUpdate }[]): Record<string, string> | undefined {
  const group = dependencyGroup(p.nuspec, deps);
  if (group.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const d of group) {
    const key = Object.keys(target).find((k) => nameOf(k).toLowerCase() === d.id.toLowerCase())!;
    const moving = ready.find((r) => r.update.name.toLowerCase() === d.id.toLowerCase());
    out[nameOf(key)] = moving ? moving.update.to : versionOf(key);
  }
  return out;
}

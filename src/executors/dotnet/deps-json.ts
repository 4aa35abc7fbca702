import { DotnetError } from './errors.js';
import { parseFramework, type Framework } from './frameworks.js';

/**
 * An application's `<app>.deps.json` (the .NET host's dependency manifest),
 * read and rewritten the way the SDK would have written it for another
 * version of a package.
 */
export interface DepsJson {
  /** The target the host resolves from: `runtimeTarget.name`, e.g. `.NETCoreApp,Version=v8.0/linux-x64`. */
  readonly runtimeTarget: string;
  readonly framework: Framework;
  /** The RID of a RID-specific (self-contained or `-r`) publish; undefined for a portable app. */
  readonly rid?: string;
  readonly targets: Readonly<Record<string, Readonly<Record<string, TargetEntry>>>>;
  readonly libraries: Readonly<Record<string, LibraryEntry>>;
}

export interface AssetVersions {
  readonly assemblyVersion?: string;
  readonly fileVersion?: string;
}

export interface TargetEntry {
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly runtime?: Readonly<Record<string, AssetVersions>>;
  readonly resources?: Readonly<Record<string, { readonly locale?: string }>>;
  readonly [key: string]: unknown;
}

export interface LibraryEntry {
  readonly type?: string;
  readonly serviceable?: boolean;
  readonly sha512?: string;
  readonly path?: string;
  readonly hashPath?: string;
  readonly [key: string]: unknown;
}

/** Reads a deps.json; a file the host could not use is DEPS_JSON_INVALID. */
export function readDepsJson(text: string, path: string): DepsJson {
  let json: unknown;
  try { json = JSON.parse(text.replace(/^\uFEFF/, '')); } catch (error) {
    throw new DotnetError('DEPS_JSON_INVALID', `${path} is not valid JSON: ${(error as Error).message}`);
  }
  const root = json as { runtimeTarget?: unknown; targets?: unknown; libraries?: unknown } | null;
  if (!isObject(root) || !isObject(root.targets) || !isObject(root.libraries)) throw new DotnetError('DEPS_JSON_INVALID', `${path} has no targets or libraries`);
  const targets = root.targets as Record<string, unknown>;
  // Old writers put the name straight in runtimeTarget; with none, a single target is the runtime one.
  const named = typeof root.runtimeTarget === 'string' ? root.runtimeTarget : isObject(root.runtimeTarget) && typeof root.runtimeTarget['name'] === 'string' ? root.runtimeTarget['name'] : undefined;
  const runtimeTarget = named ?? (Object.keys(targets).length === 1 ? Object.keys(targets)[0]! : undefined);
  if (!runtimeTarget || !isObject(targets[runtimeTarget])) throw new DotnetError('DEPS_JSON_INVALID', `${path}: the runtime target ${JSON.stringify(runtimeTarget ?? '')} is not among its targets`);
  for (const [name, target] of Object.entries(targets)) {
    if (!isObject(target)) throw new DotnetError('DEPS_JSON_INVALID', `${path}: target ${JSON.stringify(name)} is not an object`);
  }
  const slash = runtimeTarget.indexOf('/');
  const frameworkName = slash < 0 ? runtimeTarget : runtimeTarget.slice(0, slash);
  const framework = parseFramework(frameworkName);
  if (!framework || framework.family !== '.NETCoreApp') throw new DotnetError('DOTNET_UNSUPPORTED', `${path}: the app targets ${frameworkName}; only .NET (Core) apps are patched`);
  return {
    runtimeTarget, framework, ...(slash < 0 ? {} : { rid: runtimeTarget.slice(slash + 1) }),
    targets: targets as DepsJson['targets'],
    libraries: root.libraries as DepsJson['libraries'],
  };
}

/** The `libraries` key of a package at a version (names compare as NuGet ids do, case-insensitively). */
export function libraryKey(deps: DepsJson, name: string, version: string): string | undefined {
  const wanted = `${name}/${version}`.toLowerCase();
  return Object.keys(deps.libraries).find((k) => k.toLowerCase() === wanted && deps.libraries[k]?.type === 'package');
}

/** One package moved to another version: everything in deps.json that names it. */
export interface DepsJsonChange {
  /** The current `libraries` key, `Name/1.2.3`. */
  readonly key: string;
  readonly to: string;
  /** Base64 SHA-512 of the new .nupkg (its `.nupkg.sha512` file). */
  readonly sha512: string;
  /** The new target entry: its dependencies and the assets the app has. */
  readonly entry: {
    readonly dependencies?: Readonly<Record<string, string>>;
    readonly runtime: Readonly<Record<string, AssetVersions>>;
    readonly resources?: Readonly<Record<string, { readonly locale: string }>>;
  };
}

/**
 * Rewrites deps.json for the changes, keeping everything else as it was:
 * each `Name/old` key becomes `Name/new` in place (targets and libraries); the
 * target entry gets the new version's dependencies and assets (asset paths,
 * assemblyVersion, fileVersion); the library entry its `sha512`, `path` and
 * `hashPath` (as the packages folder names them: lower-case id and version);
 * and every dependency reference to the old version names the new one.
 * Written back as the SDK writes it (two-space JSON), BOM and final newline
 * as the original had them.
 */
export function rewriteDepsJson(text: string, changes: readonly DepsJsonChange[]): string {
  const bom = text.startsWith('\uFEFF');
  const root = JSON.parse(bom ? text.slice(1) : text) as Record<string, unknown>;
  const byKey = new Map(changes.map((c) => [c.key, c]));
  const renamed = new Map(changes.map((c) => [c.key, `${nameOf(c.key)}/${c.to}`]));
  // Dependency references are by name (any casing) and version.
  const references = new Map(changes.map((c) => [nameOf(c.key).toLowerCase(), { from: versionOf(c.key), to: c.to }]));

  const targets = root['targets'] as Record<string, Record<string, Record<string, unknown>>>;
  const newTargets: Record<string, unknown> = {};
  for (const [targetName, target] of Object.entries(targets)) {
    newTargets[targetName] = mapEntries(target, (key, entry) => {
      const change = byKey.get(key);
      const withRefs = retarget(entry, references);
      if (!change) return [key, withRefs];
      const { dependencies, runtime, resources } = change.entry;
      return [renamed.get(key)!, {
        ...(dependencies && Object.keys(dependencies).length > 0 ? { dependencies } : {}),
        ...(Object.keys(runtime).length > 0 ? { runtime } : {}),
        ...(resources && Object.keys(resources).length > 0 ? { resources } : {}),
      }];
    });
  }
  const libraries = root['libraries'] as Record<string, Record<string, unknown>>;
  const newLibraries = mapEntries(libraries, (key, entry) => {
    const change = byKey.get(key);
    if (!change) return [key, entry];
    const id = nameOf(key).toLowerCase();
    const version = change.to.toLowerCase();
    return [renamed.get(key)!, {
      ...entry,
      sha512: `sha512-${change.sha512}`,
      path: `${id}/${version}`,
      hashPath: `${id}.${version}.nupkg.sha512`,
    }];
  });
  const out = mapEntries(root, (key, value) => [key, key === 'targets' ? newTargets : key === 'libraries' ? newLibraries : value]);
  return `${bom ? '\uFEFF' : ''}${JSON.stringify(out, null, 2)}${/\n\s*$/.test(text) ? '\n' : ''}`;
}

function retarget(entry: Record<string, unknown>, references: ReadonlyMap<string, { from: string; to: string }>): Record<string, unknown> {
  const dependencies = entry['dependencies'];
  if (!isObject(dependencies)) return entry;
  let changed = false;
  const updated = mapEntries(dependencies, (name, version) => {
    const ref = references.get(name.toLowerCase());
    if (!ref || version !== ref.from) return [name, version];
    changed = true;
    return [name, ref.to];
  });
  return changed ? mapEntries(entry, (k, v) => [k, k === 'dependencies' ? updated : v]) : entry;
}

/** Rebuilds an object entry by entry, so a renamed key keeps its place. */
function mapEntries<V>(object: Readonly<Record<string, V>>, f: (key: string, value: V) => [string, unknown]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(object)) {
    const [key, value] = f(k, v);
    // defineProperty: a key such as "__proto__" stays a plain key, as JSON.parse made it.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export function nameOf(key: string): string {
  return key.slice(0, key.lastIndexOf('/'));
}

export function versionOf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

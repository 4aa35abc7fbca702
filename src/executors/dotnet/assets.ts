import { nearestFramework, parseFramework, ridFallbacks, type Framework } from './frameworks.js';

/** One file of a .nupkg the app loads at run time, and where a published app keeps it. */
export interface RuntimeAsset {
  /** Its path in the package, as deps.json keys it: `lib/netstandard2.0/Newtonsoft.Json.dll`. */
  readonly path: string;
  /** The zip entry it comes from (percent-encoded as OPC packages store names). */
  readonly entry: string;
  /** Relative to the app directory: `Newtonsoft.Json.dll`, `de/Foo.resources.dll`. */
  readonly appPath: string;
  /** Satellite resource assemblies carry their culture. */
  readonly locale?: string;
}

export interface AssetSelection {
  /** The folder chosen: `lib/netstandard2.0`, `runtimes/linux-x64/lib/net8.0`; undefined when the package has no run-time assemblies. */
  readonly folder?: string;
  /** Chosen through AssetTargetFallback (.NET Framework assets in a .NET app: NU1701). */
  readonly fallback: boolean;
  readonly runtime: readonly RuntimeAsset[];
  readonly resources: readonly RuntimeAsset[];
  /**
   * Assets the in-place DLL swap does not cover: native libraries for the
   * app's RID, and RID-specific assemblies a portable app lists as runtimeTargets.
   */
  readonly unsupported: readonly string[];
  /** The package has lib/ assemblies, none for this framework. */
  readonly incompatible: boolean;
}

const assemblyExtension = /\.(dll|exe|winmd)$/i;
const locale = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;

/**
 * NuGet's choice of run-time assets for an app, from the .nupkg's file names
 * alone: the nearest `lib/<tfm>/` (or, for a RID-specific app, the most
 * specific `runtimes/<rid>/lib/<tfm>/` on the RID graph), its assemblies
 * (`runtime`) and its `<culture>/*.resources.dll` satellites (`resources`).
 * A `_._` file marks a framework the package supports with no assemblies.
 */
export function selectAssets(entries: readonly string[], app: { readonly framework: Framework; readonly rid?: string }): AssetSelection {
  const files = entries.flatMap((entry) => {
    const path = packagePath(entry);
    return path ? [{ entry, path }] : [];
  });
  const unsupported: string[] = [];
  const fromFolder = (folder: string, fallback: boolean): AssetSelection => {
    const inFolder = files.filter((f) => f.path.startsWith(`${folder}/`)).map((f) => ({ ...f, rest: f.path.slice(folder.length + 1) }));
    const runtime = inFolder.filter((f) => !f.rest.includes('/') && assemblyExtension.test(f.rest) && !/\.resources\.dll$/i.test(f.rest))
      .map((f) => ({ path: f.path, entry: f.entry, appPath: f.rest }));
    const resources = inFolder.flatMap((f) => {
      const parts = f.rest.split('/');
      if (parts.length !== 2 || !locale.test(parts[0]!) || !/\.resources\.dll$/i.test(parts[1]!)) return [];
      return [{ path: f.path, entry: f.entry, appPath: f.rest, locale: parts[0]! }];
    });
    return { folder, fallback, runtime, resources, unsupported, incompatible: false };
  };
  const groupsUnder = (prefix: string) => [...new Set(files.filter((f) => f.path.startsWith(prefix)).map((f) => f.path.slice(prefix.length).split('/')[0]!))]
    .filter((name) => files.some((f) => f.path.startsWith(`${prefix}${name}/`)));

  if (app.rid !== undefined) {
    const chain = ridFallbacks(app.rid) ?? [app.rid];
    for (const rid of chain) {
      const chosen = nearestFramework(app.framework, groupsUnder(`runtimes/${rid}/lib/`), parseFramework);
      if (chosen) {
        unsupported.push(...nativeFor(files, chain));
        return fromFolder(`runtimes/${rid}/lib/${chosen.pick}`, chosen.fallback);
      }
    }
    unsupported.push(...nativeFor(files, chain));
  } else {
    unsupported.push(...files.filter((f) => f.path.startsWith('runtimes/') && /^runtimes\/[^/]+\/(lib|native)\//.test(f.path)).map((f) => f.path));
  }
  const libGroups = groupsUnder('lib/');
  const chosen = nearestFramework(app.framework, libGroups, parseFramework);
  if (chosen) return fromFolder(`lib/${chosen.pick}`, chosen.fallback);
  return { fallback: false, runtime: [], resources: [], unsupported, incompatible: files.some((f) => f.path.startsWith('lib/') && assemblyExtension.test(f.path)) };
}

/** Native libraries of the most specific RID on the chain that has any. */
function nativeFor(files: readonly { path: string }[], chain: readonly string[]): string[] {
  for (const rid of chain) {
    const native = files.filter((f) => f.path.startsWith(`runtimes/${rid}/native/`)).map((f) => f.path);
    if (native.length > 0) return native;
  }
  return [];
}

/**
 * A zip entry name as a package path: percent-decoded (OPC), forward
 * slashes; undefined for names that could escape a directory or are not
 * part of the package's content.
 */
export function packagePath(entry: string): string | undefined {
  let path: string;
  try { path = decodeURIComponent(entry.replace(/\\/g, '/')); } catch { return undefined; }
  if (path.startsWith('/') || path.endsWith('/') || path.split('/').some((p) => p === '' || p === '.' || p === '..') || /[\0]/.test(path)) return undefined;
  return path;
}

import semver from 'semver';
import type { ImageFilesystem } from '../../image/filesystem.js';

/** What dependency resolution needs from the image: directories and the packages installed in them. */
export interface NodeModulesView {
  /** The real (symlink-free) root-relative path of `path`, if it exists. */
  realpath(path: string): string | undefined;
  isDirectory(path: string): boolean;
  /** name and version from the package.json at `path` (a real path), if there is a readable one. */
  manifestAt(path: string): Promise<{ readonly name?: string; readonly version?: string } | undefined>;
}

/** The dependencies a version declares, as the registry's abbreviated metadata gives them. */
export interface DeclaredDependencies {
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly peerDependenciesMeta?: Readonly<Record<string, { readonly optional?: boolean }>>;
}

export interface UnmetDependency {
  readonly name: string;
  readonly spec: string;
  /** The version Node would load instead, if any. */
  readonly found?: string;
  readonly why: string;
}

/**
 * The `node_modules` directories Node's resolver searches from a package
 * directory: its own, then each ancestor's (never `node_modules/node_modules`),
 * up to the root's.
 */
export function nodeModulesPaths(dir: string): string[] {
  const parts = dir.split('/').filter(Boolean);
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) {
    if (i > 0 && parts[i - 1] === 'node_modules') continue;
    out.push([...parts.slice(0, i), 'node_modules'].join('/'));
  }
  return out;
}

/**
 * Which of a version's dependencies would not be satisfied if it were
 * installed at `packageDir`: each entry of `dependencies` and each peer not
 * marked optional must resolve, by Node's algorithm from the package's own
 * (real) directory, to an installed version in range. A missing optional
 * dependency is fine (npm skips those that cannot install); one present at a
 * wrong version is not.
 */
export async function unmetDependencies(view: NodeModulesView, packageDir: string, declared: DeclaredDependencies): Promise<UnmetDependency[]> {
  const start = view.realpath(packageDir) ?? packageDir;
  const optional = new Set(Object.keys(declared.optionalDependencies ?? {}));
  const wanted = new Map<string, { spec: string; optional: boolean }>();
  for (const [name, spec] of Object.entries(declared.dependencies ?? {})) wanted.set(name, { spec, optional: optional.has(name) });
  for (const [name, spec] of Object.entries(declared.optionalDependencies ?? {})) wanted.set(name, { spec, optional: true });
  for (const [name, spec] of Object.entries(declared.peerDependencies ?? {})) {
    if (declared.peerDependenciesMeta?.[name]?.optional === true || wanted.has(name)) continue;
    wanted.set(name, { spec, optional: false });
  }
  const unmet: UnmetDependency[] = [];
  for (const [name, { spec, optional: isOptional }] of wanted) {
    const found = await resolvePackage(view, start, name);
    if (!found) {
      if (!isOptional) unmet.push({ name, spec, why: `${name}@${spec || '*'} is not installed where ${packageDir} would load it` });
      continue;
    }
    const verdict = satisfies(name, spec, found.manifest);
    if (verdict !== true) unmet.push({ name, spec, ...(found.manifest?.version ? { found: found.manifest.version } : {}), why: `${verdict} (at ${found.dir})` });
  }
  return unmet;
}

/** The directory (and its package.json) Node loads for `require(name)` from `fromDir`. */
export async function resolvePackage(view: NodeModulesView, fromDir: string, name: string): Promise<{ dir: string; manifest?: { name?: string; version?: string } } | undefined> {
  for (const modules of nodeModulesPaths(fromDir)) {
    const real = view.realpath(`${modules}/${name}`);
    if (real === undefined || !view.isDirectory(real)) continue;
    const manifest = await view.manifestAt(`${real}/package.json`);
    return { dir: real, ...(manifest ? { manifest } : {}) };
  }
  return undefined;
}

/**
 * Whether an installed package satisfies a dependency spec, as npm's
 * dep-valid judges a registry dependency: semver ranges (loose), `npm:`
 * aliases, and dist-tags (anything installed from the registry). Specs that
 * name git, URLs, files or workspaces cannot be judged from the image: a
 * reason is returned instead of `true`.
 */
export function satisfies(name: string, spec: string, installed: { name?: string; version?: string } | undefined): true | string {
  const version = installed?.version;
  if (!version || !semver.valid(version, true)) return `${name} is installed without a readable version`;
  let range = spec.trim();
  if (range.startsWith('npm:')) {
    const target = range.slice(4);
    const at = target.lastIndexOf('@');
    const targetName = at > 0 ? target.slice(0, at) : target;
    range = at > 0 ? target.slice(at + 1) : '';
    if (installed?.name !== targetName) return `${name} should be ${targetName} (${spec}), found ${installed?.name ?? 'another package'}`;
  }
  if (range === '' || range === '*') return true;
  if (semver.validRange(range, true) !== null) {
    return semver.satisfies(version, range, true) ? true : `${name}@${version} does not satisfy ${spec}`;
  }
  // A dist-tag (latest, next): npm accepts whatever the registry gave.
  if (/^[A-Za-z][A-Za-z0-9._-]*$/.test(range)) return true;
  return `${name}@${spec} is not a registry range patchd can check`;
}

/** Resolution over an image, with the versions a run is about to install standing in for the old ones. */
export interface ImageNodeModules extends NodeModulesView {
  /** package.json path → what will be there. */
  planned: Map<string, { name: string; version: string }>;
}

/** A view of the image's node_modules; `known` (the inventory's npm packages) saves reading their package.json. */
export function imageNodeModules(fs: ImageFilesystem, known: readonly { path: string; name: string; version: string }[] = []): ImageNodeModules {
  const installed = new Map(known.map((p) => [p.path, { name: p.name, version: p.version }]));
  const view: ImageNodeModules = {
    planned: new Map(),
    realpath: (path) => fs.realpath(path),
    isDirectory: (path) => fs.entryAt(path)?.type === 'directory',
    async manifestAt(path) {
      const found = view.planned.get(path) ?? installed.get(path);
      if (found) return found;
      const bytes = fs.entryAt(path) ? await fs.readFile(path) : undefined;
      if (!bytes) return undefined;
      try {
        const json = JSON.parse(bytes.toString('utf8')) as { name?: unknown; version?: unknown };
        return { ...(typeof json.name === 'string' ? { name: json.name } : {}), ...(typeof json.version === 'string' ? { version: json.version } : {}) };
      } catch {
        return {};
      }
    },
  };
  return view;
}

import { NpmError } from './errors.js';

/** A JSON file as npm writes it: the value, its indent and newline, and whether it ends with one. */
export interface JsonDocument {
  data: Record<string, unknown>;
  readonly indent: string;
  readonly newline: '\n' | '\r\n';
  readonly trailingNewline: boolean;
}

export function parseJsonDocument(text: string, file: string): JsonDocument {
  let data: unknown;
  try {
    data = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new NpmError('NPM_LOCKFILE_INVALID', `${file} is not JSON: ${(error as Error).message}`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new NpmError('NPM_LOCKFILE_INVALID', `${file} is not a JSON object`);
  // npm keeps the indent of the file's first indented line (json-parse-even-better-errors).
  const indent = /^\{\r?\n([ \t]+)"/.exec(text)?.[1] ?? '  ';
  return { data: data as Record<string, unknown>, indent, newline: text.includes('\r\n') ? '\r\n' : '\n', trailingNewline: /\n$/.test(text) };
}

export function formatJsonDocument(doc: JsonDocument): string {
  const body = JSON.stringify(doc.data, null, doc.indent) + (doc.trailingNewline ? '\n' : '');
  return doc.newline === '\r\n' ? body.replace(/\n/g, '\r\n') : body;
}

/** What a new version of one installed package puts into the lockfiles. */
export interface LockedVersion {
  readonly version: string;
  readonly resolved: string;
  readonly integrity: string;
  /** The new version's package.json, from its tarball. */
  readonly manifest: Readonly<Record<string, unknown>>;
  /** From the registry's metadata (neither is in package.json). */
  readonly deprecated?: string;
  readonly hasInstallScript?: boolean;
}

/**
 * Moves one package in a package-lock.json, npm-shrinkwrap.json or hidden
 * `node_modules/.package-lock.json` to a new version. `location` is the
 * package's place relative to the project root (`node_modules/a/node_modules/b`).
 * lockfileVersion 2 and 3 (`packages`): the entry is rebuilt the way npm's
 * Shrinkwrap.metaFromNode writes it from the new package.json, keeping what
 * belongs to the place (dev/optional/peer flags, an alias name). Version 1
 * (and the v2 compatibility section, `dependencies`): version, resolved,
 * integrity and `requires`, children kept. Returns whether an entry changed.
 */
export function updateLockfile(data: Record<string, unknown>, location: string, next: LockedVersion): boolean {
  let changed = false;
  const packages = data['packages'];
  // A link entry (`link: true`) is a symlink to a workspace, not a registry package's place.
  if (isObject(packages) && isObject(packages[location]) && packages[location]['link'] !== true) {
    packages[location] = packageEntry(packages[location], next);
    changed = true;
  }
  const legacy = legacyEntry(data, location);
  if (legacy) {
    legacy.parent[legacy.name] = legacyDependency(legacy.entry, next);
    changed = true;
  }
  return changed;
}

/** npm's lockfile entry fields taken from a package.json, in Shrinkwrap's order (pkgMetaKeys). */
const pkgMetaKeys = [
  'version', 'dependencies', 'peerDependencies', 'peerDependenciesMeta', 'optionalDependencies', 'bundleDependencies',
  'acceptDependencies', 'funding', 'engines', 'os', 'cpu', 'libc', 'license', 'bin', 'workspaces',
] as const;
/** What belongs to the package's place in the tree, not to its version. */
const placeKeys = ['name', 'dev', 'optional', 'devOptional', 'peer', 'extraneous', 'inBundle'] as const;

function packageEntry(old: Record<string, unknown>, next: LockedVersion): Record<string, unknown> {
  const pkg = normalisedManifest(next.manifest);
  const entry: Record<string, unknown> = {};
  for (const key of pkgMetaKeys) {
    const value = metaField(pkg, key);
    if (value !== undefined) entry[key] = value;
  }
  entry['version'] = next.version;
  entry['integrity'] = next.integrity;
  if ('resolved' in old) entry['resolved'] = next.resolved;
  if (next.hasInstallScript || hasInstallScript(pkg)) entry['hasInstallScript'] = true;
  if (next.deprecated) entry['deprecated'] = next.deprecated;
  if (old['hasShrinkwrap'] === true && pkg['_hasShrinkwrap'] === true) entry['hasShrinkwrap'] = true;
  for (const key of placeKeys) if (old[key] !== undefined) entry[key] = old[key];
  return npmOrdered(entry) as Record<string, unknown>;
}

function legacyDependency(old: Record<string, unknown>, next: LockedVersion): Record<string, unknown> {
  const pkg = normalisedManifest(next.manifest);
  const entry: Record<string, unknown> = { ...old, version: next.version, integrity: next.integrity };
  if ('resolved' in old) entry['resolved'] = next.resolved;
  // npm v6 `requires`: every non-peer edge out, with the spec as written.
  const requires = { ...asRecord(pkg['dependencies']), ...asRecord(pkg['optionalDependencies']) };
  if (Object.keys(requires).length > 0) entry['requires'] = requires;
  else delete entry['requires'];
  return npmOrdered(entry) as Record<string, unknown>;
}

/** The v1 `dependencies` tree node for a `node_modules/a/node_modules/b` location. */
function legacyEntry(data: Record<string, unknown>, location: string): { parent: Record<string, unknown>; name: string; entry: Record<string, unknown> } | undefined {
  const names = packageNames(location);
  if (!names) return undefined;
  let parent = data['dependencies'];
  let entry: unknown;
  for (const [i, name] of names.entries()) {
    if (!isObject(parent)) return undefined;
    entry = parent[name];
    if (!isObject(entry)) return undefined;
    if (i < names.length - 1) parent = entry['dependencies'];
  }
  return isObject(parent) && isObject(entry) ? { parent, name: names.at(-1)!, entry } : undefined;
}

/** `node_modules/a/node_modules/@s/b` → ['a', '@s/b']; undefined for a location outside node_modules. */
export function packageNames(location: string): string[] | undefined {
  const parts = location.split('/');
  const names: string[] = [];
  for (let i = 0; i < parts.length;) {
    if (parts[i] !== 'node_modules') return undefined;
    const first = parts[i + 1];
    if (!first) return undefined;
    if (first.startsWith('@')) {
      const second = parts[i + 2];
      if (!second) return undefined;
      names.push(`${first}/${second}`);
      i += 3;
    } else {
      names.push(first);
      i += 2;
    }
  }
  return names.length > 0 ? names : undefined;
}

/**
 * A package.json as npm reads it from disk (read-package-json-fast): a string
 * `bin` becomes `{ name: path }` with clean paths, `bundledDependencies` is
 * `bundleDependencies`, and optional dependencies are not repeated in
 * `dependencies`.
 */
export function normalisedManifest(raw: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const pkg: Record<string, unknown> = { ...raw };
  const name = typeof pkg['name'] === 'string' ? pkg['name'] : '';
  const bin = binMap(name, pkg['bin']);
  if (bin) pkg['bin'] = bin;
  else delete pkg['bin'];
  if (pkg['bundledDependencies'] !== undefined && pkg['bundleDependencies'] === undefined) pkg['bundleDependencies'] = pkg['bundledDependencies'];
  delete pkg['bundledDependencies'];
  if (pkg['bundleDependencies'] === true) pkg['bundleDependencies'] = Object.keys(asRecord(pkg['dependencies']));
  const optional = asRecord(pkg['optionalDependencies']);
  if (isObject(pkg['dependencies']) && Object.keys(optional).length > 0) {
    pkg['dependencies'] = Object.fromEntries(Object.entries(pkg['dependencies']).filter(([k]) => !(k in optional)));
  }
  return pkg;
}

/** A package's bin entries as `{ command: package-relative path }`, cleaned as npm cleans them. */
export function binMap(name: string, bin: unknown): Record<string, string> | undefined {
  const raw: Record<string, unknown> = typeof bin === 'string' ? { [name.replace(/^@[^/]+\//, '')]: bin } : isObject(bin) ? bin : {};
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') continue;
    const command = key.replace(/[\\:]/g, '/').split('/').filter(Boolean).at(-1);
    const target = cleanPath(value);
    if (!command || command === '.' || command === '..' || target === undefined) continue;
    out[command] = target;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** `./bin/x.js` → `bin/x.js`; a path climbing out of the package is dropped (npm does the same). */
function cleanPath(path: string): string | undefined {
  const parts: string[] = [];
  for (const part of path.replace(/\\/g, '/').split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') { if (parts.pop() === undefined) return undefined; continue; }
    parts.push(part);
  }
  return parts.length > 0 ? parts.join('/') : undefined;
}

function metaField(pkg: Record<string, unknown>, key: string): unknown {
  const value = pkg[key];
  if (!value) return undefined;
  if (key === 'license' && isObject(value) && typeof value['type'] === 'string') return value['type'];
  if (typeof value === 'object' && Object.keys(value).length === 0) return undefined;
  return value;
}

function hasInstallScript(pkg: Record<string, unknown>): boolean {
  const scripts = asRecord(pkg['scripts']);
  return ['preinstall', 'install', 'postinstall'].some((s) => typeof scripts[s] === 'string');
}

const preferredKeys = ['name', 'version', 'lockfileVersion', 'resolved', 'integrity', 'requires', 'packages', 'dependencies'];

/**
 * The key order npm writes (json-stringify-nice with Shrinkwrap's preferred
 * keys): scalars before objects; within each, the preferred keys in their
 * order, then the rest by `localeCompare`. Applied to the rebuilt entries only:
 * the rest of a file keeps its order.
 */
export function npmOrdered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(npmOrdered);
  if (!isObject(value)) return value;
  const rank = (k: string) => preferredKeys.indexOf(k);
  const entries = Object.entries(value).sort(([ak, av], [bk, bv]) => {
    const ao = isObject(av);
    const bo = isObject(bv);
    if (ao !== bo) return ao ? 1 : -1;
    const ar = rank(ak);
    const br = rank(bk);
    if (ar >= 0 && br < 0) return -1;
    if (br >= 0 && ar < 0) return 1;
    if (ar >= 0 && br >= 0) return ar - br;
    return ak.localeCompare(bk, 'en');
  });
  return Object.fromEntries(entries.map(([k, v]) => [k, npmOrdered(v)]));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

function asRecord(value: unknown): Record<string, unknown> {
  return isObject(value) ? value : {};
}

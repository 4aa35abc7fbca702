import type { PackageRecord } from '../types.js';

/** `node_modules/<name>/package.json` or `node_modules/@scope/<name>/package.json`: an installed package's own manifest. */
export const nodePackagePath = /(^|\/)node_modules\/(@[^/]+\/)?[^/@][^/]*\/package\.json$/;
/** Any other package.json: a candidate application root (its dependencies are the direct ones). */
export const nodeManifestPath = /(^|\/)package\.json$/;
const globalRoots = /^(usr\/local\/lib|usr\/lib|opt\/[^/]+\/lib)\/node_modules$/;

export interface NodeAppManifest {
  readonly dir: string;
  readonly dependencies: ReadonlySet<string>;
}

export function readNodePackage(text: string, path: string): PackageRecord | undefined {
  const json = parseJson(text);
  const name = typeof json?.['name'] === 'string' ? json['name'] : undefined;
  const version = typeof json?.['version'] === 'string' ? json['version'] : undefined;
  if (!name || !version) return undefined;
  const modulesDir = path.slice(0, path.lastIndexOf('node_modules/') + 'node_modules'.length);
  const global = globalRoots.test(modulesDir) && path.slice(modulesDir.length + 1).split('/').length === (name.startsWith('@') ? 3 : 2);
  return {
    ecosystem: 'npm', class: 'library', name, version, path,
    location: modulesDir.replace(/\/?node_modules$/, '') || '.',
    ...(global ? { global: true, direct: true } : {}),
  };
}

export function readNodeManifest(text: string, path: string): NodeAppManifest | undefined {
  const json = parseJson(text);
  if (!json) return undefined;
  const deps = new Set<string>();
  for (const key of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
    const value = json[key];
    if (value && typeof value === 'object') for (const name of Object.keys(value)) deps.add(name);
  }
  return { dir: path.replace(/\/?package\.json$/, ''), dependencies: deps };
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

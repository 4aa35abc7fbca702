import type { ImageFilesystem } from '../../image/filesystem.js';

/** Where an installed package sits: its directory, the project that owns it, and its key in that project's lockfiles. */
export interface PackagePlace {
  /** Root-relative: `srv/app/node_modules/a/node_modules/minimist`. */
  readonly dir: string;
  /** The directory holding the top `node_modules` (the app root, or `<prefix>/lib` for global packages). */
  readonly root: string;
  /** `dir` relative to `root`: the key in `packages` of package-lock.json. */
  readonly location: string;
  /** The `node_modules` directory the package is in. */
  readonly modulesDir: string;
  readonly name: string;
  /** A top-level package of a global prefix (`<prefix>/lib/node_modules/<name>`). */
  readonly global: boolean;
  /** Directly in the root's own node_modules (not nested under another package). */
  readonly topLevel: boolean;
}

const globalRoot = /^(usr\/local\/lib|usr\/lib|opt\/[^/]+\/lib)$/;

/** The place of the package whose package.json is `manifestPath`, or undefined if it is not inside a node_modules directory. */
export function placeOf(manifestPath: string): PackagePlace | undefined {
  const dir = manifestPath.replace(/\/package\.json$/, '');
  if (dir === manifestPath) return undefined;
  const parts = dir.split('/');
  const first = parts.indexOf('node_modules');
  if (first < 0) return undefined;
  const last = parts.lastIndexOf('node_modules');
  const rest = parts.slice(last + 1);
  const scoped = rest[0]?.startsWith('@') ?? false;
  if (rest.length !== (scoped ? 2 : 1)) return undefined;
  const root = parts.slice(0, first).join('/');
  const topLevel = first === last;
  return {
    dir, root, location: parts.slice(first).join('/'), modulesDir: parts.slice(0, last + 1).join('/'), name: rest.join('/'),
    global: topLevel && globalRoot.test(root), topLevel,
  };
}

/** Why npm does not manage this project (yarn, pnpm), or undefined for an npm project. */
export function foreignPackageManager(fs: ImageFilesystem, root: string, place: PackagePlace): string | undefined {
  const at = (p: string) => (root === '' ? p : `${root}/${p}`);
  if (place.dir.includes('/node_modules/.pnpm/') || fs.lstat(at('node_modules/.pnpm')) || fs.stat(at('pnpm-lock.yaml')) || fs.stat(at('node_modules/.modules.yaml'))) {
    return `${root || '/'} is a pnpm project (pnpm-lock.yaml / node_modules/.pnpm): only npm projects are supported, patch it with pnpm`;
  }
  if (fs.stat(at('yarn.lock')) || fs.stat(at('.pnp.cjs')) || fs.stat(at('.pnp.js')) || fs.stat(at('node_modules/.yarn-state.yml'))) {
    return `${root || '/'} is a yarn project (yarn.lock): only npm projects are supported, patch it with yarn`;
  }
  return undefined;
}

/** The image's own node and npm CLI (absolute paths inside the image), for the BuildKit fallback. */
export interface NpmTooling {
  readonly node: string;
  readonly npmCli: string;
}

const nodeCandidates = ['usr/local/bin/node', 'usr/bin/node', 'usr/bin/nodejs', 'opt/nodejs/bin/node'];
const npmCliCandidates = [
  'usr/local/lib/node_modules/npm/bin/npm-cli.js',
  'usr/lib/node_modules/npm/bin/npm-cli.js',
  'usr/share/nodejs/npm/bin/npm-cli.js',
  'opt/nodejs/lib/node_modules/npm/bin/npm-cli.js',
];

/** Finds node and npm-cli.js in the image (following the image's own symlinks), or undefined. */
export function findNpmTooling(fs: ImageFilesystem): NpmTooling | undefined {
  const isFile = (p: string) => ['file', 'hardlink'].includes(fs.stat(p)?.type ?? '');
  const node = nodeCandidates.find(isFile);
  const npmCli = npmCliCandidates.find(isFile);
  return node && npmCli ? { node: `/${node}`, npmCli: `/${npmCli}` } : undefined;
}

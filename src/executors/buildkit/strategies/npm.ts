import { BuildkitError } from '../errors.js';
import { scratchFile, type LlbState } from '../llb.js';

/** An npm project to reinstall with new overrides in its package.json. */
export interface NpmProjectInstall {
  /** Absolute directory of the project inside the image. */
  readonly dir: string;
  /** The project's package.json with the `overrides` added (written over the old one, its owner and mode kept). */
  readonly packageJson: string;
  /** Dependency types the image left out when it was built (`--omit=dev`). */
  readonly omit: readonly ('dev' | 'optional' | 'peer')[];
  /** For the step's name in BuildKit's progress. */
  readonly packages: readonly { readonly name: string; readonly version: string }[];
}

/** Globally installed packages to reinstall at new versions under their prefix. */
export interface NpmGlobalInstall {
  /** Absolute prefix inside the image (`/usr/local`: packages in `<prefix>/lib/node_modules`). */
  readonly prefix: string;
  readonly packages: readonly { readonly name: string; readonly version: string }[];
}

export interface NpmInstallOptions {
  /** The image's own node binary and npm-cli.js, absolute paths inside the image. */
  readonly node: string;
  readonly npmCli: string;
  /** The registry npm installs from (no credentials in it: they would land in the build definition). */
  readonly registry: string;
  readonly projects: readonly NpmProjectInstall[];
  readonly globals: readonly NpmGlobalInstall[];
}

// npm's cache and logs stay in a cache mount, never in the patch layer.
const npmCacheDir = '/var/cache/patchd-npm';
const npmCache = { kind: 'cache', dest: npmCacheDir, id: 'patchd-npm-cache', sharing: 'locked' } as const;
const npmEnv = (node: string) => [
  `PATH=${node.slice(0, node.lastIndexOf('/')) || '/'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
  `npm_config_cache=${npmCacheDir}`, 'npm_config_update_notifier=false', 'npm_config_loglevel=warn',
];
const commonFlags = ['--ignore-scripts', '--no-audit', '--no-fund'];

/**
 * npm with the image's own node, as Copa patches Node.js: each project gets
 * `overrides` for the packages to move (written into its package.json) and
 * one `npm install --ignore-scripts`; global packages are reinstalled with
 * `npm install -g` under their prefix. Every value passed to npm is checked
 * first: names, versions, directories and the registry URL.
 *
 * All of it is one exec (the patch is the difference between `base` and one
 * op, so it exports as one layer): a fixed node script reads the plan from a
 * read-only mount, writes each package.json in place (its owner and mode
 * kept) and runs npm-cli.js with argument arrays, never through a shell.
 */
export function npmInstall(base: LlbState, options: NpmInstallOptions): LlbState {
  for (const path of [options.node, options.npmCli]) checkPath(path);
  const registry = checkRegistry(options.registry);
  const steps: { dir: string; packageJson?: string; args: string[] }[] = [];
  const names: string[] = [];
  for (const project of options.projects) {
    checkPath(project.dir);
    for (const p of project.packages) checkPackage(p);
    const omit = project.omit.map((o) => {
      if (o !== 'dev' && o !== 'optional' && o !== 'peer') throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass --omit=${JSON.stringify(o)} to npm`);
      return `--omit=${o}`;
    });
    steps.push({ dir: project.dir, packageJson: project.packageJson, args: ['install', ...commonFlags, ...omit, `--registry=${registry}`] });
    names.push(`${project.packages.map((p) => `${p.name}@${p.version}`).join(' ')} in ${project.dir}`);
  }
  for (const global of options.globals) {
    checkPath(global.prefix);
    for (const p of global.packages) checkPackage(p);
    const specs = global.packages.map((p) => `${p.name}@${p.version}`);
    steps.push({ dir: '/', args: ['install', '--global', `--prefix=${global.prefix}`, ...commonFlags, `--registry=${registry}`, ...specs] });
    names.push(`-g ${specs.join(' ')}`);
  }
  if (steps.length === 0) return base;
  const plan = scratchFile('/plan.json', JSON.stringify({ npmCli: options.npmCli, steps }), 'npm plan');
  return base.run({
    args: [options.node, '-e', runPlan, `${planMount}/plan.json`],
    env: npmEnv(options.node), mounts: [npmCache, { kind: 'bind', dest: planMount, state: plan, readonly: true }],
    name: `npm install (overrides, --ignore-scripts): ${names.join('; ')}`,
  });
}

const planMount = '/.patchd-npm';

/** Runs with the image's node, however old: plain CommonJS, no newer syntax. */
const runPlan = [
  "var fs = require('fs'), cp = require('child_process');",
  "var plan = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));",
  'plan.steps.forEach(function (step) {',
  "  if (typeof step.packageJson === 'string') fs.writeFileSync(step.dir + '/package.json', step.packageJson);",
  "  var r = cp.spawnSync(process.execPath, [plan.npmCli].concat(step.args), { cwd: step.dir, stdio: 'inherit' });",
  "  if (r.status !== 0) { console.error('patchd: npm ' + step.args.join(' ') + ' failed in ' + step.dir); process.exit(r.status || 1); }",
  '});',
].join('\n');

const namePattern = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/i;
const versionPattern = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

function checkPackage(p: { name: string; version: string }): void {
  if (p.name.length > 214 || !namePattern.test(p.name)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass package name ${JSON.stringify(p.name)} to npm`);
  if (!versionPattern.test(p.version)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass version ${JSON.stringify(p.version)} of ${p.name} to npm`);
}

function checkPath(path: string): void {
  if (!/^\/[A-Za-z0-9._@+/-]*$/.test(path) || path.split('/').some((p) => p === '..' || p === '.')) {
    throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass path ${JSON.stringify(path)} to npm`);
  }
}

function checkRegistry(registry: string): string {
  let url: URL;
  try {
    url = new URL(registry);
  } catch {
    throw new BuildkitError('BUILD_REQUEST_INVALID', 'refusing to pass an npm registry that is not a URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash || /\s/.test(registry)) {
    throw new BuildkitError('BUILD_REQUEST_INVALID', 'refusing to pass the npm registry URL to npm: only http(s) URLs without credentials, query or fragment');
  }
  return url.toString().endsWith('/') ? url.toString() : `${url.toString()}/`;
}

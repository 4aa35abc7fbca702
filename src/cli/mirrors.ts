import { UsageError } from '../lib/errors.js';
import { defaultLibraryIndexUrls, type PackageIndex, type PackageIndexes } from '../plan/library-index.js';
import type { PackageMirrors } from '../pipeline/patch-image.js';

/** The mirror flags `patch` and `scan` share (parseArgs options). */
export const mirrorOptions = {
  'apt-mirror': { type: 'string', multiple: true },
  'rpm-mirror': { type: 'string', multiple: true },
} as const;

/** The library index flags of `patch`. */
export const indexOptions = {
  'pypi-index': { type: 'string' },
  'npm-registry': { type: 'string' },
  'go-proxy': { type: 'string' },
  'nuget-source': { type: 'string' },
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * `--apt-mirror FROM=TO` (credentials from PATCHD_APT_USERNAME / _PASSWORD)
 * and `--rpm-mirror FROM=TO` or `REPOID=TO`. Credentials never come from argv:
 * a URL with user:password@ in it is refused (without repeating it).
 */
export function mirrorsFromFlags(values: { 'apt-mirror'?: string[] | undefined; 'rpm-mirror'?: string[] | undefined }, env: Env): PackageMirrors {
  const username = env['PATCHD_APT_USERNAME'];
  const credentials = username ? { username, password: env['PATCHD_APT_PASSWORD'] ?? '' } : undefined;
  const apt = (values['apt-mirror'] ?? []).map((value) => {
    const { from, to } = pair('--apt-mirror', value);
    if (!isUrl(from)) throw new UsageError(`--apt-mirror takes FROM=TO with FROM a URL as the image's apt sources name it (got ${JSON.stringify(from)})`);
    return { from, to, ...(credentials ? { credentials } : {}) };
  });
  const rpm = (values['rpm-mirror'] ?? []).map((value) => {
    const { from, to } = pair('--rpm-mirror', value);
    if (isUrl(from)) return { from, to };
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(from)) throw new UsageError(`--rpm-mirror takes FROM=TO or REPOID=TO (got ${JSON.stringify(from)} before the =)`);
    return { repo: from, to };
  });
  return { ...(apt.length > 0 ? { apt } : {}), ...(rpm.length > 0 ? { rpm } : {}) };
}

/**
 * `--pypi-index`, `--npm-registry`, `--go-proxy`, `--nuget-source`: all four
 * indexes (the public ones where no flag is given), each flag's credentials
 * from PATCHD_<KIND>_TOKEN or PATCHD_<KIND>_USERNAME / _PASSWORD (KIND: PYPI,
 * NPM, GOPROXY, NUGET); the public indexes never get credentials.
 */
export function indexesFromFlags(values: { 'pypi-index'?: string | undefined; 'npm-registry'?: string | undefined; 'go-proxy'?: string | undefined; 'nuget-source'?: string | undefined }, env: Env): PackageIndexes {
  const index = (flag: string, value: string | undefined, kind: string, fallback: string): PackageIndex => {
    if (value === undefined) return { url: fallback };
    const url = mirrorUrl(flag, value);
    const token = env[`PATCHD_${kind}_TOKEN`];
    const username = env[`PATCHD_${kind}_USERNAME`];
    if (token) return { url, credentials: { token } };
    if (username) return { url, credentials: { username, password: env[`PATCHD_${kind}_PASSWORD`] ?? '' } };
    return { url };
  };
  return {
    pypi: index('--pypi-index', values['pypi-index'], 'PYPI', defaultLibraryIndexUrls.pypi),
    npm: index('--npm-registry', values['npm-registry'], 'NPM', defaultLibraryIndexUrls.npm),
    goProxy: index('--go-proxy', values['go-proxy'], 'GOPROXY', defaultLibraryIndexUrls.goProxy),
    nuget: index('--nuget-source', values['nuget-source'], 'NUGET', defaultLibraryIndexUrls.nuget),
  };
}

function pair(flag: string, value: string): { from: string; to: string } {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new UsageError(`${flag} takes FROM=TO`);
  return { from: value.slice(0, eq).trim(), to: mirrorUrl(flag, value.slice(eq + 1).trim()) };
}

function mirrorUrl(flag: string, value: string): string {
  let url: URL;
  try { url = new URL(value); } catch { throw new UsageError(`${flag}: the mirror is not a URL`); }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${flag}: the mirror must be an http or https URL`);
  if (url.username || url.password) throw new UsageError(`${flag}: credentials go in the environment, never on the command line`);
  return value.replace(/\/+$/, '');
}

function isUrl(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
}

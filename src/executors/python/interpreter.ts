import { posix } from 'node:path';
import type { ImageFilesystem } from '../../image/filesystem.js';
import type { Inventory } from '../../scan/inventory/types.js';
import { PythonError } from './errors.js';
import { wheelArch, type InterpreterTarget } from './tags.js';

/**
 * A site-packages directory of the image and the interpreter that imports
 * from it, read from the image's files: the version from the path and
 * `pyvenv.cfg`, the install scheme (venv root or prefix) that bounds what an
 * install there may touch, and whether that interpreter has pip.
 */
export interface PythonPlace {
  /** Root-relative, symlinks resolved. */
  readonly sitePackages: string;
  /** The scheme's base: the venv root, or the prefix (`usr/local`) of `<prefix>/lib/python3.X/site-packages`. Undefined for `--target` style directories. */
  readonly prefix?: string;
  readonly venv?: { readonly root: string; readonly home?: string; readonly includeSystemSitePackages: boolean };
  /** Absolute path (inside the image) of the interpreter using this place, if it is in the image. */
  readonly interpreter?: string;
  readonly implementation: InterpreterTarget['implementation'];
  readonly version: { readonly major: number; readonly minor: number; readonly micro?: number };
  readonly freeThreaded: boolean;
  /** pip is importable by that interpreter (the BuildKit fallback runs it). */
  readonly pip: boolean;
  /** The interpreter's stdlib has PEP 668's EXTERNALLY-MANAGED marker (pip then needs --break-system-packages outside a venv). */
  readonly externallyManaged: boolean;
}

const placePattern = /^(?:(.*)\/)?lib(?:64)?\/(python|pypy)(\d+)\.(\d+)(t?)\/(?:site|dist)-packages$/;

export async function describePlace(fs: ImageFilesystem, inventory: Inventory, location: string): Promise<PythonPlace> {
  const sitePackages = fs.realpath(location);
  if (sitePackages === undefined || fs.stat(sitePackages)?.type !== 'directory') {
    throw new PythonError('INSTALL_UNSUPPORTED', `${location} is not a directory in the image`);
  }
  const m = placePattern.exec(sitePackages);
  let prefix = m ? m[1] ?? '' : undefined;
  let version: { major: number; minor: number; micro?: number } | undefined = m ? { major: Number(m[3]), minor: Number(m[4]) } : undefined;
  let implementation: PythonPlace['implementation'] = m?.[2] === 'pypy' ? 'pypy' : 'cpython';
  const freeThreaded = m?.[5] === 't';

  let venv: PythonPlace['venv'];
  if (prefix !== undefined) {
    const cfg = await readPyvenvCfg(fs, posix.join(prefix, 'pyvenv.cfg'));
    if (cfg) {
      venv = { root: prefix, ...(cfg['home'] ? { home: cfg['home'] } : {}), includeSystemSitePackages: cfg['include-system-site-packages']?.toLowerCase() === 'true' };
      const v = /^(\d+)\.(\d+)\.(\d+)/.exec(cfg['version'] ?? cfg['version_info'] ?? '');
      if (v && version && Number(v[1]) === version.major && Number(v[2]) === version.minor) version = { ...version, micro: Number(v[3]) };
      if (/pypy/i.test(`${cfg['home'] ?? ''} ${cfg['implementation'] ?? ''}`)) implementation = 'pypy';
    }
  }
  if (!version) {
    // A --target style directory: the image's only Python 3, if it has exactly one.
    const found = imagePythonVersions(fs);
    if (found.length !== 1) {
      throw new PythonError('INSTALL_UNSUPPORTED', `cannot tell which Python imports from ${sitePackages}: it is not <prefix>/lib/python3.X/site-packages and the image has ${found.length === 0 ? 'no' : `${found.length}`} Python 3 interpreters`);
    }
    version = found[0]!;
    prefix = undefined;
  }

  const short = `${version.major}.${version.minor}`;
  const candidates = venv
    ? [`${venv.root}/bin/python`, `${venv.root}/bin/python${version.major}`, `${venv.root}/bin/python${short}`]
    : [
      ...(prefix !== undefined ? [`${prefix}/bin/python${short}`] : []),
      // Debian's pip installs into /usr/local/lib/python3.X/dist-packages for the distribution's /usr/bin/python3.X.
      ...(prefix === 'usr/local' ? [`usr/bin/python${short}`] : []),
      ...(prefix === undefined ? [`usr/local/bin/python${short}`, `usr/bin/python${short}`] : []),
    ];
  const interpreter = candidates.find((c) => fs.lstat(c) !== undefined);
  if (implementation === 'cpython' && interpreter && /pypy/.test(posix.basename(fs.realpath(interpreter) ?? ''))) implementation = 'pypy';
  if (version.micro === undefined) {
    const micro = await interpreterMicro(fs, inventory, prefix, version);
    if (micro !== undefined) version = { ...version, micro };
  }

  const stdlibs = [...new Set([prefix, venv?.home ? posix.dirname(venv.home.replace(/^\/+/, '')) : undefined, 'usr/local', 'usr'].filter((p) => p !== undefined))]
    .map((p) => posix.join(p, `lib/python${short}`));
  const systemSites = venv && !venv.includeSystemSitePackages ? [] : [
    ...stdlibs.flatMap((l) => [`${l}/site-packages`, `${l}/dist-packages`]),
    `usr/lib/python${version.major}/dist-packages`, `usr/lib64/python${short}/site-packages`,
  ];
  const pip = [sitePackages, ...systemSites].some((dir) => fs.stat(`${dir}/pip/__init__.py`)?.type === 'file');
  // PEP 668's marker sits in the interpreter's own stdlib directory.
  const interpreterPrefix = interpreter ? posix.dirname(posix.dirname(interpreter)) : prefix;
  const externallyManaged = !venv && interpreterPrefix !== undefined && fs.stat(posix.join(interpreterPrefix === '.' ? '' : interpreterPrefix, `lib/python${short}/EXTERNALLY-MANAGED`)) !== undefined;

  return {
    sitePackages, ...(prefix !== undefined ? { prefix } : {}), ...(venv ? { venv } : {}),
    ...(interpreter ? { interpreter: `/${interpreter}` } : {}),
    implementation, version, freeThreaded, pip, externallyManaged,
  };
}

async function readPyvenvCfg(fs: ImageFilesystem, path: string): Promise<Record<string, string> | undefined> {
  if (fs.stat(path)?.type !== 'file') return undefined;
  const text = (await fs.readFile(path))?.toString('utf8');
  if (text === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]!.toLowerCase()] = m[2]!;
  }
  return out;
}

/** Python 3 versions with an interpreter in the usual places (python3.X). */
function imagePythonVersions(fs: ImageFilesystem): { major: number; minor: number }[] {
  const seen = new Set<string>();
  for (const dir of ['usr/local/bin', 'usr/bin', 'bin']) {
    for (const name of fs.readdir(dir)) {
      const m = /^python(3)\.(\d+)$/.exec(name);
      if (m) seen.add(`${m[1]}.${m[2]}`);
    }
  }
  return [...seen].map((v) => ({ major: Number(v.split('.')[0]), minor: Number(v.split('.')[1]) }));
}

/** The micro release of the interpreter, from the distribution's package or the installed headers. */
async function interpreterMicro(fs: ImageFilesystem, inventory: Inventory, prefix: string | undefined, version: { major: number; minor: number }): Promise<number | undefined> {
  const short = `${version.major}.${version.minor}`;
  const names = new Set([`python${short}-minimal`, `libpython${short}-minimal`, `python${short}`, `libpython${short}-stdlib`, `python${version.major}`, `python${version.major}-libs`, `python${short}-libs`]);
  for (const p of inventory.packages) {
    if (p.class !== 'os' || !names.has(p.name)) continue;
    const m = /^(?:\d+:)?(\d+)\.(\d+)\.(\d+)/.exec(p.version);
    if (m && `${m[1]}.${m[2]}` === short) return Number(m[3]);
  }
  for (const base of [...new Set([prefix, 'usr/local', 'usr'].filter((p) => p !== undefined))]) {
    const header = `${base}/include/python${short}/patchlevel.h`;
    if (fs.stat(header)?.type !== 'file') continue;
    const m = /#define\s+PY_VERSION\s+"(\d+)\.(\d+)\.(\d+)/.exec((await fs.readFile(header))?.toString('latin1') ?? '');
    if (m && `${m[1]}.${m[2]}` === short) return Number(m[3]);
  }
  return undefined;
}

/**
 * The C library the image's interpreters link against, and its version:
 * from the package database (dpkg's libc6, rpm's glibc, apk's musl) or, for
 * images without one, from the loader's and libc's own files.
 */
export async function imageLibc(fs: ImageFilesystem, inventory: Inventory): Promise<InterpreterTarget['libc']> {
  const fromPackages = (names: readonly string[]) => {
    for (const p of inventory.packages) {
      if (p.class !== 'os' || !names.includes(p.name)) continue;
      const m = /^(?:\d+:)?(\d+)\.(\d+)/.exec(p.version);
      if (m) return { major: Number(m[1]), minor: Number(m[2]) };
    }
    return undefined;
  };
  const musl = fromPackages(['musl']);
  if (musl) return { family: 'musl', ...musl };
  const glibc = fromPackages(['libc6', 'glibc', 'libc6-amd64', 'glibc-minimal']);
  if (glibc) return { family: 'glibc', ...glibc };

  const libDirs = ['lib', 'usr/lib', 'lib64', 'usr/lib64'].flatMap((d) => [d, ...fs.readdir(d).filter((n) => /-linux-gnu/.test(n)).map((n) => `${d}/${n}`)]);
  for (const dir of ['lib', 'usr/lib']) {
    if (fs.readdir(dir).some((n) => /^ld-musl-.*\.so\.1$/.test(n))) return { family: 'unknown' };
  }
  for (const dir of libDirs) {
    const libc = `${dir}/libc.so.6`;
    const entry = fs.lstat(libc);
    if (!entry) continue;
    const named = /^libc-(\d+)\.(\d+)\.so$/.exec(posix.basename(entry.linkname ?? ''))
      ?? fs.readdir(dir).map((n) => /^libc-(\d+)\.(\d+)\.so$/.exec(n)).find(Boolean);
    if (named) return { family: 'glibc', major: Number(named[1]), minor: Number(named[2]) };
    const real = fs.realpath(libc);
    if (!real || (fs.stat(real)?.size ?? Infinity) > 16 * 2 ** 20) continue;
    const bytes = (await fs.readFile(real))?.toString('latin1') ?? '';
    const release = /GNU C Library[^\n]*?release version (\d+)\.(\d+)/.exec(bytes);
    if (release) return { family: 'glibc', major: Number(release[1]), minor: Number(release[2]) };
    let highest = -1;
    for (const v of bytes.matchAll(/GLIBC_2\.(\d+)/g)) highest = Math.max(highest, Number(v[1]));
    if (highest >= 0) return { family: 'glibc', major: 2, minor: highest };
  }
  return { family: 'unknown' };
}

/** The tag target for one place: its interpreter on the image's C library and architecture. */
export function targetOf(place: PythonPlace, libc: InterpreterTarget['libc'], platform: { architecture: string; variant?: string }): InterpreterTarget {
  const arch = wheelArch(platform) ?? platform.architecture;
  return { implementation: place.implementation, version: place.version, freeThreaded: place.freeThreaded, arch, libc };
}

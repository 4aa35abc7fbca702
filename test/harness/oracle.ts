import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { bookwormRootfsTar } from './fixture-image.js';
import { run } from './tools.js';

// The oracle for the end-to-end test: the fixture root after a real
// `apt-get update && apt-get upgrade` in a chroot. patchd's result is compared
// with it file by file.
//
// Cached under $PATCHD_CACHE/oracle/<rootfs sha256>-<index key>: the index key
// hashes the Packages index hashes the archive publishes right now, so a new
// security or point-release upgrade in the archive (which patchd would apply)
// makes a new oracle instead of comparing against a stale one.

export interface AptOracle {
  /** The fixture root as extracted, untouched. */
  readonly originalRoot: string;
  /** The same root after `apt-get upgrade`. */
  readonly upgradedRoot: string;
  /** Path of the log of apt-get update and upgrade. */
  readonly upgradeLog: string;
}

const cacheRoot = (): string => join(process.env.PATCHD_CACHE ?? join(homedir(), '.cache', 'patchd'), 'oracle');

// chroot'ed tools get a plain, predictable environment, not the test runner's.
const chrootEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root' };

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

interface AptSource {
  readonly uri: string;
  readonly suites: readonly string[];
  readonly components: readonly string[];
}

/** The deb822 sources the fixture ships (build-bookworm.sh writes debian.sources). */
function parseDeb822Sources(text: string): AptSource[] {
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const fields = new Map<string, string>();
      for (const line of stanza.split('\n')) {
        const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (match) fields.set(match[1]!.toLowerCase(), match[2]!.trim());
      }
      return {
        uri: (fields.get('uris') ?? '').split(/\s+/)[0] ?? '',
        suites: (fields.get('suites') ?? '').split(/\s+/).filter(Boolean),
        components: (fields.get('components') ?? '').split(/\s+/).filter(Boolean),
      };
    })
    .filter((source) => source.uri !== '' && source.suites.length > 0);
}

/**
 * What apt-get update would see: for each suite, the SHA256 lines of the
 * Packages indexes for our architecture, as the signed InRelease lists them.
 */
async function archiveIndexKey(tarPath: string, architecture: string): Promise<string> {
  const { stdout } = await run('tar', ['-xOf', tarPath, './etc/apt/sources.list.d/debian.sources']);
  const sources = parseDeb822Sources(stdout);
  if (sources.length === 0) throw new Error(`no apt sources in ${tarPath}`);
  const hash = createHash('sha256');
  for (const source of sources) {
    for (const suite of source.suites) {
      const url = `${source.uri.replace(/\/$/, '')}/dists/${suite}/InRelease`;
      const response = await fetch(url, { signal: AbortSignal.timeout(60_000) });
      if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
      const inRelease = await response.text();
      const sha256Section = inRelease.split(/^SHA256:$/m)[1] ?? '';
      const indexLines = sha256Section
        .split('\n')
        .filter((line) => source.components.some((component) => line.endsWith(` ${component}/binary-${architecture}/Packages.xz`)));
      if (indexLines.length === 0) throw new Error(`${url} lists no Packages.xz for ${architecture}`);
      hash.update(`${url}\n${indexLines.join('\n')}\n`);
    }
  }
  return hash.digest('hex');
}

async function extract(tarPath: string, root: string): Promise<void> {
  await mkdir(root);
  await run('tar', ['--numeric-owner', '-xpf', tarPath, '-C', root]);
}

async function mountPoints(): Promise<string[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').map((line) => line.split(' ')[1] ?? '');
}

async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPoints()).includes(path);
}

/** rm -rf that refuses to walk into a mount (a leftover /dev bind would take the host's device nodes with it). */
async function removeTree(path: string): Promise<void> {
  const inside = (await mountPoints()).filter((mount) => mount === path || mount.startsWith(`${path}/`));
  if (inside.length > 0) throw new Error(`oracle: not removing ${path}: still mounted: ${inside.join(', ')}`);
  await rm(path, { recursive: true, force: true });
}

async function unmount(path: string): Promise<void> {
  if (!(await isMountPoint(path))) return;
  const result = await run('umount', [path], { allowFailure: true });
  // Something still holding the mount (a straggling apt method): detach it lazily.
  if (result.code !== 0) await run('umount', ['-l', path]);
}

/** Runs apt-get upgrade in the root the way a Dockerfile `RUN` would, appending all output to log. */
async function aptUpgrade(root: string, log: string): Promise<void> {
  const resolvConf = join(root, 'etc/resolv.conf');
  const resolvConfSaved = join(root, 'etc/resolv.conf.patchd-oracle');
  const hadResolvConf = await exists(resolvConf);
  const dev = join(root, 'dev');
  const proc = join(root, 'proc');
  const step = async (args: string[]): Promise<void> => {
    await appendFile(log, `$ chroot ${root} ${args.join(' ')}\n`);
    const result = await run('chroot', [root, ...args], { env: chrootEnv, allowFailure: true });
    await appendFile(log, result.stdout + result.stderr);
    if (result.code !== 0) throw new Error(`oracle: ${args.join(' ')} failed with ${result.code}; see ${log}\n${result.stderr.slice(-2000)}`);
  };
  try {
    // Whatever the image has there (file or dangling symlink) is put back afterwards.
    if (hadResolvConf) await rename(resolvConf, resolvConfSaved);
    await copyFile('/etc/resolv.conf', resolvConf);
    await mkdir(dev, { recursive: true });
    await mkdir(proc, { recursive: true });
    await run('mount', ['--bind', '/dev', dev]);
    await run('mount', ['-t', 'proc', 'proc', proc]);
    await step(['apt-get', 'update']);
    await step(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y', '-o', 'Dpkg::Options::=--force-confold', 'upgrade']);
  } finally {
    await unmount(proc);
    await unmount(dev);
    await rm(resolvConf, { force: true });
    if (hadResolvConf) await rename(resolvConfSaved, resolvConf);
  }
}

let building: Promise<AptOracle> | undefined;

/** The fixture root before and after a real apt-get upgrade (built once, then cached). */
export function aptUpgradedRoot(): Promise<AptOracle> {
  building ??= buildOracle().catch((err: unknown) => {
    building = undefined;
    throw err;
  });
  return building;
}

async function buildOracle(): Promise<AptOracle> {
  const tarPath = await bookwormRootfsTar();
  const architecture = (await run('dpkg', ['--print-architecture'])).stdout.trim();
  const [rootfsSha, indexKey] = await Promise.all([sha256OfFile(tarPath), archiveIndexKey(tarPath, architecture)]);
  const dir = join(cacheRoot(), `${rootfsSha.slice(0, 16)}-${indexKey.slice(0, 16)}`);
  const oracle: AptOracle = { originalRoot: join(dir, 'orig'), upgradedRoot: join(dir, 'root'), upgradeLog: join(dir, 'upgrade.log') };
  if (await exists(join(dir, 'complete'))) return oracle;

  await mkdir(cacheRoot(), { recursive: true });
  const work = await mkdtemp(join(cacheRoot(), 'build.'));
  try {
    await Promise.all([extract(tarPath, join(work, 'orig')), extract(tarPath, join(work, 'root'))]);
    const log = join(work, 'upgrade.log');
    await writeFile(log, `oracle for ${tarPath} (sha256 ${rootfsSha}), archive index key ${indexKey}\n`);
    await aptUpgrade(join(work, 'root'), log);
    await writeFile(join(work, 'complete'), `${new Date().toISOString()}\n`);
    await removeTree(dir);
    await rename(work, dir);
  } catch (err) {
    await removeTree(work);
    throw err;
  }
  // Older oracles of the same fixture are outdated by the archive now: drop them.
  for (const name of await readdir(cacheRoot())) {
    if (name.startsWith(`${rootfsSha.slice(0, 16)}-`) && join(cacheRoot(), name) !== dir) {
      await removeTree(join(cacheRoot(), name));
    }
  }
  return oracle;
}

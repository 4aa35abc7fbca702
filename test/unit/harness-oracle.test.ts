import assert from 'node:assert/strict';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { bookwormRootfsTar } from '../harness/fixture-image.js';
import { aptUpgradedRoot } from '../harness/oracle.js';
import { run } from '../harness/tools.js';
import { compareTrees, volatilePaths } from '../harness/tree-compare.js';

// The oracle is what the e2e test trusts: check that it really is an upgraded
// copy of the fixture, and that every difference it has is explained by the
// packages apt upgraded (so volatilePaths hides nothing that matters).
// Builds the fixture and the oracle on first use (about a minute), cached after.

function packageVersions(status: string): Map<string, string> {
  const versions = new Map<string, string>();
  for (const stanza of status.split(/\n\n+/)) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    const version = /^Version: (.+)$/m.exec(stanza)?.[1];
    if (name && version) versions.set(name, version);
  }
  return versions;
}

test('the fixture is a Debian bookworm root with the official image\'s apt suites', async () => {
  const tarPath = await bookwormRootfsTar();
  const osRelease = await run('tar', ['-xOf', tarPath, './usr/lib/os-release']);
  assert.match(osRelease.stdout, /^VERSION_CODENAME=bookworm$/m);
  const sources = await run('tar', ['-xOf', tarPath, './etc/apt/sources.list.d/debian.sources']);
  assert.match(sources.stdout, /Suites: bookworm-security/);
});

test('the oracle upgraded packages, and only their files changed', { timeout: 15 * 60_000 }, async () => {
  const oracle = await aptUpgradedRoot();
  assert.equal(await aptUpgradedRoot(), oracle, 'built once per process');
  assert.match(await readFile(oracle.upgradeLog, 'utf8'), /\d+ upgraded, \d+ newly installed/);

  const before = packageVersions(await readFile(join(oracle.originalRoot, 'var/lib/dpkg/status'), 'utf8'));
  const after = packageVersions(await readFile(join(oracle.upgradedRoot, 'var/lib/dpkg/status'), 'utf8'));
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'upgrade installs and removes nothing');
  const upgraded = [...after].filter(([name, version]) => before.get(name) !== version).map(([name]) => name);
  assert.ok(upgraded.length > 0, 'the fixture is outdated: apt upgraded something');
  for (const name of upgraded) {
    const newer = await run('dpkg', ['--compare-versions', after.get(name)!, 'gt', before.get(name)!], { allowFailure: true });
    assert.equal(newer.code, 0, `${name}: ${before.get(name)} -> ${after.get(name)} is not an upgrade`);
  }

  // Every remaining difference must belong to an upgraded package: its files
  // (from its .list) or its dpkg metadata.
  // dpkg names a Multi-Arch: same package's files <name>:<arch>.*, others <name>.*.
  const infoDir = join(oracle.upgradedRoot, 'var/lib/dpkg/info');
  const infoNames = await readdir(infoDir);
  const infoPrefixes = upgraded.map((name) => {
    const list = infoNames.find((file) => file === `${name}.list` || (file.startsWith(`${name}:`) && file.endsWith('.list')));
    assert.ok(list, `no dpkg file list for ${name}`);
    return `var/lib/dpkg/info/${list.slice(0, -'list'.length)}`;
  });
  // dpkg records /lib/..., /bin/...; on a merged-/usr root those top-level
  // directories are symlinks into usr/, where the files really are.
  const topLevelLinks = new Map<string, string>();
  for (const entry of await readdir(oracle.upgradedRoot)) {
    const target = await readlink(join(oracle.upgradedRoot, entry)).catch(() => undefined);
    if (target) topLevelLinks.set(entry, target.replace(/^\//, ''));
  }
  const onDisk = (dpkgPath: string): string => {
    const [top = '', ...rest] = dpkgPath.slice(1).split('/');
    const target = topLevelLinks.get(top);
    return target && rest.length > 0 ? [target, ...rest].join('/') : dpkgPath.slice(1);
  };
  // Files of the old versions (removed ones) and of the new ones.
  const owned = new Set<string>();
  for (const prefix of infoPrefixes) {
    for (const root of [oracle.originalRoot, oracle.upgradedRoot]) {
      const list = await readFile(join(root, `${prefix}list`), 'utf8').catch(() => '');
      for (const path of list.split('\n')) if (path.startsWith('/')) owned.add(onDisk(path));
    }
  }
  // What maintainer scripts of upgraded packages write (ca-certificates' postinst and update-ca-certificates).
  const scriptOutput = (path: string) =>
    upgraded.includes('ca-certificates') && (path.startsWith('etc/ca-certificates.conf') || path.startsWith('etc/ssl/certs/'));
  const differences = await compareTrees(oracle.originalRoot, oracle.upgradedRoot, { ignore: volatilePaths });
  assert.ok(differences.length > upgraded.length);
  const unexplained = differences.filter(
    (d) => !owned.has(d.path) && !scriptOutput(d.path) && d.path !== 'var/lib/dpkg/status' && !infoPrefixes.some((prefix) => d.path.startsWith(prefix)),
  );
  assert.deepEqual(unexplained, []);

  // Nothing of the chroot setup is left: no mounts, the image's own resolv.conf.
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  assert.ok(!mounts.includes(oracle.upgradedRoot), 'a mount is left inside the oracle');
  const [origResolv, upgradedResolv] = await Promise.all(
    [oracle.originalRoot, oracle.upgradedRoot].map(async (root) => {
      const path = join(root, 'etc/resolv.conf');
      const stats = await lstat(path).catch(() => undefined);
      return stats && { mode: stats.mode, content: stats.isFile() ? await readFile(path, 'utf8') : undefined };
    }),
  );
  assert.deepEqual(upgradedResolv, origResolv);
});

import assert from 'node:assert/strict';
import { chmod, chown, lchown, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { compareTrees, volatilePaths, type TreeDifference } from '../harness/tree-compare.js';
import { tmpDir, type TempDir } from '../harness/tools.js';

let work: TempDir;
before(async () => {
  work = await tmpDir('patchd-tree-compare');
});
after(async () => {
  await work?.remove();
});

let counter = 0;
/** Two identical small roots; `change` then makes b differ. */
async function pair(change: (a: string, b: string) => Promise<void>): Promise<TreeDifference[]> {
  const a = join(work.path, `${++counter}-a`);
  const b = join(work.path, `${counter}-b`);
  for (const root of [a, b]) {
    await mkdir(join(root, 'etc', 'ssl'), { recursive: true });
    await mkdir(join(root, 'usr', 'bin'), { recursive: true });
    await writeFile(join(root, 'etc', 'hostname'), 'fixture\n');
    await writeFile(join(root, 'usr', 'bin', 'tool'), '#!/bin/sh\necho v1\n');
    await chmod(join(root, 'usr', 'bin', 'tool'), 0o755);
    await symlink('/usr/bin/tool', join(root, 'usr', 'bin', 'alias'));
  }
  await change(a, b);
  return compareTrees(a, b, { ignore: () => false });
}

test('identical trees have no differences', async () => {
  assert.deepEqual(await pair(async () => {}), []);
});

test('a file on one side only is reported once, with its type', async () => {
  const differences = await pair(async (a, b) => {
    await writeFile(join(a, 'etc', 'only-a'), 'x');
    await mkdir(join(b, 'etc', 'only-b', 'deeper'), { recursive: true });
    await writeFile(join(b, 'etc', 'only-b', 'deeper', 'file'), 'x');
  });
  assert.deepEqual(differences, [
    { path: 'etc/only-a', kind: 'only-in-a', a: 'file' },
    { path: 'etc/only-b', kind: 'only-in-b', b: 'directory' },
  ]);
});

test('same size, different bytes is a content difference by sha256', async () => {
  const differences = await pair(async (_a, b) => {
    await writeFile(join(b, 'usr', 'bin', 'tool'), '#!/bin/sh\necho v2\n');
  });
  assert.equal(differences.length, 1);
  assert.equal(differences[0]?.path, 'usr/bin/tool');
  assert.equal(differences[0]?.kind, 'content');
  assert.match(differences[0]?.a ?? '', /^sha256:[0-9a-f]{64}$/);
  assert.notEqual(differences[0]?.a, differences[0]?.b);
});

test('different sizes are a content difference without hashing', async () => {
  const differences = await pair(async (_a, b) => {
    await writeFile(join(b, 'etc', 'hostname'), 'patched\n\n');
  });
  assert.deepEqual(differences, [{ path: 'etc/hostname', kind: 'content', a: 'size 8', b: 'size 9' }]);
});

test('permission bits, including setuid, and directory modes are compared', async () => {
  const differences = await pair(async (_a, b) => {
    await chmod(join(b, 'usr', 'bin', 'tool'), 0o4755);
    await chmod(join(b, 'etc', 'ssl'), 0o700);
  });
  assert.deepEqual(differences, [
    { path: 'etc/ssl', kind: 'mode', a: '0755', b: '0700' },
    { path: 'usr/bin/tool', kind: 'mode', a: '0755', b: '4755' },
  ]);
});

test('owners are compared for files, directories and the symlinks themselves', async () => {
  const differences = await pair(async (_a, b) => {
    await chown(join(b, 'etc', 'hostname'), 100, 101);
    await chown(join(b, 'usr'), 0, 42);
    await lchown(join(b, 'usr', 'bin', 'alias'), 7, 7);
  });
  assert.deepEqual(differences, [
    { path: 'etc/hostname', kind: 'owner', a: '0:0', b: '100:101' },
    { path: 'usr', kind: 'owner', a: '0:0', b: '0:42' },
    { path: 'usr/bin/alias', kind: 'owner', a: '0:0', b: '7:7' },
  ]);
});

test('symlinks are compared by target and never followed', async () => {
  const differences = await pair(async (a, b) => {
    await symlink('/usr/bin/tool', join(b, 'usr', 'bin', 'other'));
    await symlink('/usr/bin/elsewhere', join(a, 'usr', 'bin', 'other'));
    // Links to the host's /etc: following them would compare the host, equal on both sides.
    await symlink('/etc', join(a, 'etc', 'host'));
    await symlink('/', join(b, 'etc', 'host'));
  });
  assert.deepEqual(differences, [
    { path: 'etc/host', kind: 'symlink-target', a: '/etc', b: '/' },
    { path: 'usr/bin/other', kind: 'symlink-target', a: '/usr/bin/elsewhere', b: '/usr/bin/tool' },
  ]);
});

test('a changed type is reported as such, not as content', async () => {
  const differences = await pair(async (_a, b) => {
    await rm(join(b, 'etc', 'hostname'));
    await mkdir(join(b, 'etc', 'hostname'));
    await rm(join(b, 'usr', 'bin', 'alias'));
    await writeFile(join(b, 'usr', 'bin', 'alias'), 'not a link');
  });
  assert.deepEqual(differences, [
    { path: 'etc/hostname', kind: 'type', a: 'file', b: 'directory' },
    { path: 'usr/bin/alias', kind: 'type', a: 'symlink', b: 'file' },
  ]);
});

test('ignored paths are skipped together with their subtrees', async () => {
  const a = join(work.path, 'ignore-a');
  const b = join(work.path, 'ignore-b');
  await mkdir(join(a, 'var', 'log', 'apt'), { recursive: true });
  await mkdir(join(b, 'var', 'log'), { recursive: true });
  await writeFile(join(a, 'var', 'log', 'apt', 'history.log'), 'run 1');
  await writeFile(join(b, 'var', 'log', 'dpkg.log'), 'run 2');
  await writeFile(join(b, 'var', 'kept'), 'x');
  const seen: string[] = [];
  const differences = await compareTrees(a, b, {
    ignore: (p) => {
      seen.push(p);
      return p === 'var/log';
    },
  });
  assert.deepEqual(differences, [{ path: 'var/kept', kind: 'only-in-b', b: 'file' }]);
  assert.ok(!seen.some((p) => p.startsWith('var/log/')), `descended into an ignored directory: ${seen.join(', ')}`);
});

test('volatilePaths covers apt and dpkg bookkeeping but not what packages install', () => {
  const volatile = [
    'var/log/dpkg.log',
    'var/log/apt/eipp.log.xz',
    'var/cache/apt/archives/apt_2.6.2_amd64.deb',
    'var/cache/apt/pkgcache.bin',
    'var/cache/debconf/config.dat-old',
    'var/cache/ldconfig/aux-cache',
    'var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease',
    'var/lib/apt/lists/partial',
    'var/lib/apt/extended_states',
    'var/lib/dpkg/status-old',
    'var/lib/dpkg/diversions-old',
    'var/lib/dpkg/lock',
    'var/lib/dpkg/lock-frontend',
    'var/lib/dpkg/triggers/Unincorp',
    'etc/resolv.conf',
    'dev/null',
    'proc/self',
  ];
  const meaningful = [
    'var/lib/dpkg/status',
    'var/lib/dpkg/info/apt.md5sums',
    'var/lib/dpkg/info/apt.list',
    'var/lib/dpkg/info/old-package.postinst',
    'var/lib/apt',
    'var/lib/dpkg',
    'var/logrotate',
    'etc/resolv.conf.d',
    'etc/ld.so.cache',
    'etc/ssl/certs/ca-certificates.crt',
    'usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1',
    'usr/share/zoneinfo/Europe/Paris',
    'dev',
    'proc',
    'devices',
  ];
  for (const p of volatile) assert.equal(volatilePaths(p), true, p);
  for (const p of meaningful) assert.equal(volatilePaths(p), false, p);
});

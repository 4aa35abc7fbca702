import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { Agent } from 'undici';
import { marshal, image } from '../../src/executors/buildkit/llb.js';
import { NpmError } from '../../src/executors/npm/errors.js';
import { npmExecutor } from '../../src/executors/npm/executor.js';
import { formatJsonDocument, parseJsonDocument, updateLockfile, type LockedVersion } from '../../src/executors/npm/lockfile.js';
import { downloadTarball, fetchManifest, packumentUrl } from '../../src/executors/npm/registry.js';
import { imageNodeModules, nodeModulesPaths, unmetDependencies } from '../../src/executors/npm/resolution.js';
import { packagePath, readTarball } from '../../src/executors/npm/tarball.js';
import type { LibraryInstallContext } from '../../src/executors/library/types.js';
import { ImageFilesystem } from '../../src/image/filesystem.js';
import { createLayerBuilder, type WrittenLayer } from '../../src/image/layer-builder.js';
import type { Layer } from '../../src/image/layer.js';
import { silentLogger } from '../../src/lib/log.js';
import type { PlannedLibrary } from '../../src/plan/types.js';
import { scanLayers } from '../../src/scan/scan.js';
import { layerFromEntries, type TarEntry } from '../harness/layers.js';
import { tmpDir } from '../harness/tools.js';

// The npm executor's parts against real bytes: images built as layers,
// tarballs packed here and served by a loopback HTTP registry, lockfiles as
// npm writes them. The real npm registry is used by test/e2e/patch-node.test.ts.

const pkgJson = (name: string, version: string, extra: Record<string, unknown> = {}) => JSON.stringify({ name, version, ...extra });
const dir = (path: string): TarEntry => ({ path, type: 'directory' });
const file = (path: string, content: string, mode?: number): TarEntry => ({ path, content, ...(mode ? { mode } : {}) });
const symlink = (path: string, linkname: string): TarEntry => ({ path, type: 'symlink', linkname });

async function imageOf(entries: readonly TarEntry[]): Promise<{ layer: Layer; fs: ImageFilesystem; inventory: Awaited<ReturnType<typeof scanLayers>>['inventory'] }> {
  const layer = await layerFromEntries(entries);
  const { fs, inventory } = await scanLayers([layer]);
  return { layer, fs, inventory };
}

function tgz(entries: readonly { name: string; content?: string; mode?: number; type?: 'file' | 'directory' | 'symlink'; linkname?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'directory' || e.type === 'symlink') pack.entry({ name: e.name, type: e.type, mode: e.mode ?? 0o755, ...(e.linkname ? { linkname: e.linkname } : {}) });
    else pack.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.content ?? '');
  }
  pack.finalize();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve(gzipSync(Buffer.concat(chunks))));
    pack.on('error', reject);
  });
}

const sri = (bytes: Buffer) => `sha512-${createHash('sha512').update(bytes).digest('base64')}`;

/** A loopback npm registry: packuments and tarballs from a table, every request logged. */
class TinyRegistry {
  readonly routes = new Map<string, { status?: number; body: Buffer | string; type?: string }>();
  readonly requests: { url: string; authorization?: string; accept?: string }[] = [];
  private server?: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests.push({ url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(req.headers.accept ? { accept: req.headers.accept } : {}) });
      const route = this.routes.get(req.url ?? '');
      if (!route) { res.writeHead(404).end('{"error":"not found"}'); return; }
      res.writeHead(route.status ?? 200, { 'content-type': route.type ?? 'application/json' }).end(route.body);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** Publishes name@version: its tarball, and a packument listing it (with any versions published before). */
  publish(name: string, version: string, tarball: Buffer, doc: Record<string, unknown> = {}, dist: Record<string, unknown> = {}): string {
    const escaped = name.replace('/', '%2f');
    const tarballPath = `/${name}/-/${name.split('/').pop()}-${version}.tgz`;
    this.routes.set(tarballPath, { body: tarball, type: 'application/octet-stream' });
    const existing = this.routes.get(`/${escaped}`);
    const packument = existing ? JSON.parse(existing.body.toString()) : { name, 'dist-tags': {}, versions: {} };
    packument.versions[version] = { name, version, ...doc, dist: { tarball: `${this.url}${tarballPath}`, integrity: sri(tarball), ...dist } };
    packument['dist-tags'].latest = version;
    this.routes.set(`/${escaped}`, { body: JSON.stringify(packument) });
    return `${this.url}${tarballPath}`;
  }
}

let registry: TinyRegistry;
let dispatcher: Agent;
let scratch: { path: string; remove(): Promise<void> };

before(async () => {
  registry = new TinyRegistry();
  await registry.start();
  dispatcher = new Agent();
  scratch = await tmpDir('patchd-npm-unit');
});

after(async () => {
  await registry.stop();
  await dispatcher.close();
  await scratch.remove();
});

describe('dependency satisfaction by Node resolution', () => {
  const tree = [
    dir('srv/app/node_modules/'),
    file('srv/app/package.json', pkgJson('app', '1.0.0', { dependencies: { a: '^1.0.0' } })),
    file('srv/app/node_modules/a/package.json', pkgJson('a', '1.0.0')),
    file('srv/app/node_modules/b/package.json', pkgJson('b', '1.2.0')),
    file('srv/app/node_modules/@scope/util/package.json', pkgJson('@scope/util', '2.3.4')),
    // a nests its own b: from inside a, Node loads this one, not the hoisted 1.2.0.
    file('srv/app/node_modules/a/node_modules/b/package.json', pkgJson('b', '3.0.0')),
    file('srv/app/node_modules/aliased/package.json', pkgJson('real-name', '1.5.0')),
    // A package.json the inventory does not list (a symlinked workspace) is read from the image.
    file('srv/app/packages/w/package.json', pkgJson('w', '0.3.0')),
    symlink('srv/app/node_modules/w', '../packages/w'),
  ];

  test('Node searches the package\'s own node_modules, then each ancestor\'s, never node_modules/node_modules', () => {
    assert.deepEqual(nodeModulesPaths('srv/app/node_modules/a/node_modules/b'), [
      'srv/app/node_modules/a/node_modules/b/node_modules', 'srv/app/node_modules/a/node_modules', 'srv/app/node_modules', 'srv/node_modules', 'node_modules',
    ]);
    assert.deepEqual(nodeModulesPaths('srv/app/node_modules/@s/x'), ['srv/app/node_modules/@s/x/node_modules', 'srv/app/node_modules/@s/node_modules', 'srv/app/node_modules', 'srv/node_modules', 'node_modules']);
  });

  test('hoisted, nested, scoped, aliased and linked dependencies are found where Node would load them', async () => {
    const { fs, inventory } = await imageOf(tree);
    const view = imageNodeModules(fs, inventory.packages);
    // Installed at srv/app/node_modules/x: b resolves to the hoisted 1.2.0.
    assert.deepEqual(await unmetDependencies(view, 'srv/app/node_modules/x', { dependencies: { b: '^1.1.0', '@scope/util': '~2.3.0', aliased: 'npm:real-name@^1.2.0', w: '*' } }), []);
    // Installed inside a: b resolves to a's nested 3.0.0, which ^1.1.0 does not accept.
    const nested = await unmetDependencies(view, 'srv/app/node_modules/a/node_modules/x', { dependencies: { b: '^1.1.0' } });
    assert.equal(nested.length, 1);
    assert.equal(nested[0]!.found, '3.0.0');
    assert.match(nested[0]!.why, /b@3\.0\.0 does not satisfy \^1\.1\.0 \(at srv\/app\/node_modules\/a\/node_modules\/b\)/);
    assert.deepEqual(await unmetDependencies(view, 'srv/app/node_modules/a/node_modules/x', { dependencies: { b: '3' } }), []);
    // Scoped: a version out of range, and an alias that points at another package.
    const wrong = await unmetDependencies(view, 'srv/app/node_modules/x', { dependencies: { '@scope/util': '^3.0.0', aliased: 'npm:other@^1.0.0', w: '^1.0.0' } });
    assert.deepEqual(wrong.map((u) => u.name), ['@scope/util', 'aliased', 'w']);
  });

  test('a missing optional dependency is fine; a missing required one, or an optional one at a wrong version, is not', async () => {
    const { fs, inventory } = await imageOf(tree);
    const view = imageNodeModules(fs, inventory.packages);
    // The registry lists optional dependencies in `dependencies` too.
    assert.deepEqual(await unmetDependencies(view, 'srv/app/node_modules/x', { dependencies: { fsevents: '^2.3.0' }, optionalDependencies: { fsevents: '^2.3.0' } }), []);
    const missing = await unmetDependencies(view, 'srv/app/node_modules/x', { dependencies: { 'left-pad': '^1.0.0' } });
    assert.match(missing[0]!.why, /left-pad@\^1\.0\.0 is not installed where srv\/app\/node_modules\/x would load it/);
    assert.equal((await unmetDependencies(view, 'srv/app/node_modules/x', { optionalDependencies: { b: '^9.0.0' } })).length, 1);
  });

  test('peers: required ones must resolve; those marked optional may be missing', async () => {
    const { fs, inventory } = await imageOf(tree);
    const view = imageNodeModules(fs, inventory.packages);
    assert.deepEqual(await unmetDependencies(view, 'srv/app/node_modules/x', { peerDependencies: { b: '1.x', react: '^18' }, peerDependenciesMeta: { react: { optional: true } } }), []);
    assert.deepEqual((await unmetDependencies(view, 'srv/app/node_modules/x', { peerDependencies: { react: '^18' } })).map((u) => u.name), ['react']);
  });

  test('a version planned in the same run counts at its place; git and file specs cannot be judged', async () => {
    const { fs, inventory } = await imageOf(tree);
    const view = imageNodeModules(fs, inventory.packages);
    view.planned.set('srv/app/node_modules/b/package.json', { name: 'b', version: '1.4.0' });
    assert.deepEqual(await unmetDependencies(view, 'srv/app/node_modules/x', { dependencies: { b: '^1.4.0' } }), []);
    const git = await unmetDependencies(view, 'srv/app/node_modules/x', { dependencies: { b: 'github:someone/b#v1', a: 'file:../a' } });
    assert.deepEqual(git.map((u) => u.name), ['b', 'a']);
    assert.match(git[0]!.why, /not a registry range patchd can check/);
  });
});

describe('lockfiles', () => {
  const next: LockedVersion = {
    version: '0.2.4', resolved: 'https://registry.npmjs.org/minimist/-/minimist-0.2.4.tgz', integrity: 'sha512-NEW==',
    manifest: { name: 'minimist', version: '0.2.4', license: { type: 'MIT' }, funding: { url: 'https://github.com/sponsors/ljharb' }, dependencies: { 'tiny-dep': '^1.0.0', opt: '^2' }, optionalDependencies: { opt: '^2' }, scripts: { test: 'tape' } },
  };

  test('v3: the packages entry is rebuilt as npm writes it; place flags stay; formatting is kept', () => {
    const text = `${JSON.stringify({
      name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true,
      packages: {
        '': { name: 'app', version: '1.0.0', dependencies: { mkdirp: '0.5.1' } },
        'node_modules/minimist': { version: '0.0.8', resolved: 'https://registry.npmjs.org/minimist/-/minimist-0.0.8.tgz', integrity: 'sha512-OLD==', dev: true, license: 'MIT' },
        'node_modules/mkdirp': { version: '0.5.1', resolved: 'x', integrity: 'y', dependencies: { minimist: '0.0.8' }, bin: { mkdirp: 'bin/cmd.js' } },
      },
    }, null, 2)}\n`;
    const doc = parseJsonDocument(text, 'package-lock.json');
    assert.equal(updateLockfile(doc.data, 'node_modules/minimist', next), true);
    const out = formatJsonDocument(doc);
    assert.ok(out.endsWith('}\n') && !out.endsWith('\n\n'));
    const entry = (JSON.parse(out) as { packages: Record<string, Record<string, unknown>> }).packages['node_modules/minimist']!;
    assert.deepEqual(Object.keys(entry), ['version', 'resolved', 'integrity', 'dev', 'license', 'dependencies', 'funding', 'optionalDependencies']);
    assert.deepEqual(entry, {
      version: '0.2.4', resolved: next.resolved, integrity: 'sha512-NEW==', dev: true, license: 'MIT',
      dependencies: { 'tiny-dep': '^1.0.0' }, funding: { url: 'https://github.com/sponsors/ljharb' }, optionalDependencies: { opt: '^2' },
    });
    // Everything else is as it was, in its order.
    const was = JSON.parse(text) as { packages: Record<string, unknown> };
    const now = JSON.parse(out) as { packages: Record<string, unknown> };
    assert.deepEqual(Object.keys(now.packages), Object.keys(was.packages));
    delete was.packages['node_modules/minimist'];
    delete now.packages['node_modules/minimist'];
    assert.deepEqual(now, was);
  });

  test('v3 without `resolved` (omit-lockfile-registry-resolved) gets none; a nested location is its own entry', () => {
    const data = { lockfileVersion: 3, packages: {
      'node_modules/minimist': { version: '1.2.8', integrity: 'sha512-KEEP==' },
      'node_modules/rc/node_modules/minimist': { version: '1.2.0', integrity: 'sha512-OLD==' },
    } };
    updateLockfile(data, 'node_modules/rc/node_modules/minimist', { ...next, version: '1.2.6' });
    assert.deepEqual(data.packages['node_modules/minimist'], { version: '1.2.8', integrity: 'sha512-KEEP==' });
    assert.equal(data.packages['node_modules/rc/node_modules/minimist'].version, '1.2.6');
    assert.equal('resolved' in data.packages['node_modules/rc/node_modules/minimist'], false);
  });

  test('v2: both `packages` and the v1 `dependencies` tree move; the v1 entry gets `requires`', () => {
    const data = {
      lockfileVersion: 2,
      packages: { 'node_modules/a/node_modules/@s/b': { version: '1.0.0', resolved: 'r', integrity: 'i' } },
      dependencies: { a: { version: '2.0.0', requires: { '@s/b': '^1.0.0' }, dependencies: { '@s/b': { version: '1.0.0', resolved: 'r', integrity: 'i', dev: true, requires: { old: '1' } } } } },
    };
    const changed = updateLockfile(data, 'node_modules/a/node_modules/@s/b', { ...next, manifest: { name: '@s/b', version: '1.0.1' }, version: '1.0.1' });
    assert.equal(changed, true);
    assert.equal(data.packages['node_modules/a/node_modules/@s/b']!.version, '1.0.1');
    const legacy = data.dependencies.a.dependencies['@s/b'] as Record<string, unknown>;
    assert.deepEqual(legacy, { version: '1.0.1', resolved: next.resolved, integrity: 'sha512-NEW==', dev: true });
    assert.deepEqual(Object.keys(legacy), ['version', 'resolved', 'integrity', 'dev']);
    assert.deepEqual(data.dependencies.a.requires, { '@s/b': '^1.0.0' }, 'the parent\'s own requires are its own');
  });

  test('v1 (npm 6): dependencies tree only; 4-space indent and CRLF are kept', () => {
    const text = JSON.stringify({ name: 'app', lockfileVersion: 1, requires: true, dependencies: {
      minimist: { version: '0.0.8', resolved: 'https://registry.npmjs.org/minimist/-/minimist-0.0.8.tgz', integrity: 'sha1-hX/Kv8M5fSYluCKCYuhqp6ARsF0=' },
      mkdirp: { version: '0.5.1', requires: { minimist: '0.0.8' } },
    } }, null, 4).replace(/\n/g, '\r\n');
    const doc = parseJsonDocument(text, 'package-lock.json');
    updateLockfile(doc.data, 'node_modules/minimist', next);
    const out = formatJsonDocument(doc);
    assert.ok(out.includes('\r\n    "dependencies": {\r\n        "minimist": {\r\n            "version": "0.2.4",'));
    assert.ok(!out.endsWith('\n'), 'no trailing newline where there was none');
    const entry = (JSON.parse(out) as { dependencies: Record<string, Record<string, unknown>> }).dependencies['minimist']!;
    assert.deepEqual(entry, { version: '0.2.4', resolved: next.resolved, integrity: 'sha512-NEW==', requires: { 'tiny-dep': '^1.0.0', opt: '^2' } });
    assert.equal(updateLockfile(doc.data, 'node_modules/absent', next), false);
    assert.equal(updateLockfile({ packages: { 'node_modules/w': { resolved: 'packages/w', link: true } } }, 'node_modules/w', next), false, 'a workspace link is not a registry package');
  });
});

describe('tarballs', () => {
  test('an entry that climbs out of the package is refused, naming the package', async () => {
    assert.equal(packagePath('package/lib/x.js', 'p@1'), 'lib/x.js');
    assert.equal(packagePath('anything/index.js', 'p@1'), 'index.js', 'npm strips whatever the first directory is called');
    assert.equal(packagePath('package/', 'p@1'), undefined);
    for (const bad of ['package/../../etc/passwd', '../x', '/etc/passwd', 'package/a/../../../x']) {
      assert.throws(() => packagePath(bad, 'evil@1.0.0'), (e: unknown) => e instanceof NpmError && e.code === 'NPM_TARBALL_PATH_ESCAPE' && /evil@1\.0\.0/.test(e.message), bad);
    }
    const path = join(scratch.path, 'evil.tgz');
    await writeFile(path, await tgz([{ name: 'package/package.json', content: pkgJson('evil', '1.0.0') }, { name: 'package/../../../../tmp/pwned', content: 'x' }]));
    await assert.rejects(readTarball(path, 'evil@1.0.0', new Set()), (e: unknown) => e instanceof NpmError && e.code === 'NPM_TARBALL_PATH_ESCAPE' && /evil@1\.0\.0/.test(e.message));
  });

  test('modes as npm sets them; links dropped; .gitignore becomes .npmignore', async () => {
    const path = join(scratch.path, 'modes.tgz');
    await writeFile(path, await tgz([
      { name: 'package/package.json', content: pkgJson('m', '1.0.0', { bin: './cli.js' }), mode: 0o600 },
      { name: 'package/cli.js', content: '#!/usr/bin/env node\n', mode: 0o644 },
      { name: 'package/tool.sh', content: 'echo', mode: 0o775 },
      { name: 'package/lib/', type: 'directory', mode: 0o700 },
      { name: 'package/lib/.gitignore', content: 'x' },
      { name: 'package/link', type: 'symlink', linkname: '/etc/passwd' },
    ]));
    const contents = await readTarball(path, 'm@1.0.0', new Set(['cli.js']));
    assert.deepEqual(Object.fromEntries(contents.files), { 'package.json': 0o644, 'cli.js': 0o755, 'tool.sh': 0o755, 'lib/.npmignore': 0o644 });
    assert.deepEqual([...contents.directories], ['lib']);
    assert.equal(contents.manifest['name'], 'm');
  });
});

describe('registry', () => {
  test('scoped names are escaped as npm does; the abbreviated packument is asked for', async () => {
    assert.equal(packumentUrl({ url: 'https://r.example/npm/' }, '@scope/pkg'), 'https://r.example/npm/@scope%2fpkg');
    registry.publish('@scope/pkg', '1.0.1', await tgz([{ name: 'package/package.json', content: pkgJson('@scope/pkg', '1.0.1') }]));
    const manifest = await fetchManifest({ index: { url: registry.url, credentials: { token: 's3cret' } }, dispatcher, name: '@scope/pkg', version: '1.0.1' });
    assert.equal(manifest.version, '1.0.1');
    const asked = registry.requests.at(-1)!;
    assert.equal(asked.url, '/@scope%2fpkg');
    assert.match(asked.accept ?? '', /^application\/vnd\.npm\.install-v1\+json/);
    assert.equal(asked.authorization, 'Bearer s3cret');
    await assert.rejects(fetchManifest({ index: { url: registry.url }, dispatcher, name: '@scope/pkg', version: '9.9.9' }), (e: unknown) => e instanceof NpmError && e.code === 'NPM_VERSION_NOT_PUBLISHED' && /9\.9\.9 is not published/.test(e.message));
  });

  test('a tampered tarball is refused with a typed error naming the package, and nothing is left behind', async () => {
    const good = await tgz([{ name: 'package/package.json', content: pkgJson('tampered', '1.0.1') }]);
    registry.publish('tampered', '1.0.1', good);
    // The registry's metadata says one thing, the tarball served is another.
    const evil = await tgz([{ name: 'package/package.json', content: pkgJson('tampered', '1.0.1', { scripts: { x: 'curl evil' } }) }]);
    registry.routes.set('/tampered/-/tampered-1.0.1.tgz', { body: evil, type: 'application/octet-stream' });
    const manifest = await fetchManifest({ index: { url: registry.url }, dispatcher, name: 'tampered', version: '1.0.1' });
    const downloads = join(scratch.path, 'downloads');
    await rm(downloads, { recursive: true, force: true });
    await mkdir(downloads);
    await assert.rejects(downloadTarball({ index: { url: registry.url }, dispatcher, manifest, tmpDir: downloads }),
      (e: unknown) => e instanceof NpmError && e.code === 'NPM_INTEGRITY_MISMATCH' && e.kind === 'upstream' && /^tampered@1\.0\.1: the tarball does not match the registry's integrity/.test(e.message));
    assert.deepEqual(await readdir(downloads), []);
    // With only the legacy shasum, that is checked instead.
    registry.routes.set('/tampered/-/tampered-1.0.1.tgz', { body: good, type: 'application/octet-stream' });
    const sha1 = createHash('sha1').update(good).digest('hex');
    const ok = await downloadTarball({ index: { url: registry.url }, dispatcher, manifest: { ...manifest, dist: { tarball: manifest.dist.tarball, shasum: sha1 } }, tmpDir: downloads });
    assert.equal(ok.integrity, `sha1-${Buffer.from(sha1, 'hex').toString('base64')}`);
    await ok.remove();
  });
});

describe('the executor', () => {
  /** An app whose lockfiles pin minimist 0.0.8 under mkdirp (which nests nothing) and a nested 1.2.0 under rc. */
  const app = (extra: TarEntry[] = []): TarEntry[] => {
    const lock = (hidden: boolean) => `${JSON.stringify({
      name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true,
      packages: {
        ...(hidden ? {} : { '': { name: 'app', version: '1.0.0', dependencies: { mkdirp: '0.5.1', rc: '1.2.8', lodash: '4.17.20' } } }),
        'node_modules/lodash': { version: '4.17.20', resolved: 'https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz', integrity: 'sha512-L', license: 'MIT' },
        'node_modules/minimist': { version: '0.0.8', resolved: 'https://registry.npmjs.org/minimist/-/minimist-0.0.8.tgz', integrity: 'sha512-OLD', license: 'MIT' },
        'node_modules/mkdirp': { version: '0.5.1', resolved: 'x', integrity: 'y', license: 'MIT', dependencies: { minimist: '0.0.8' }, bin: { mkdirp: 'bin/cmd.js' } },
        'node_modules/rc': { version: '1.2.8', resolved: 'x', integrity: 'y', dependencies: { minimist: '^1.2.0' } },
        'node_modules/rc/node_modules/minimist': { version: '1.2.0', resolved: 'https://registry.npmjs.org/minimist/-/minimist-1.2.0.tgz', integrity: 'sha512-NESTED', license: 'MIT' },
      },
    }, null, 2)}\n`;
    return [
      file('srv/app/package.json', pkgJson('app', '1.0.0', { dependencies: { mkdirp: '0.5.1', rc: '1.2.8', lodash: '4.17.20' } })),
      file('srv/app/package-lock.json', lock(false)),
      file('srv/app/node_modules/.package-lock.json', lock(true)),
      file('srv/app/node_modules/lodash/package.json', pkgJson('lodash', '4.17.20')),
      file('srv/app/node_modules/minimist/package.json', pkgJson('minimist', '0.0.8')),
      file('srv/app/node_modules/minimist/index.js', 'module.exports = "old"'),
      file('srv/app/node_modules/minimist/test/parse.js', 'old test'),
      file('srv/app/node_modules/mkdirp/package.json', pkgJson('mkdirp', '0.5.1', { dependencies: { minimist: '0.0.8' }, bin: 'bin/cmd.js' })),
      file('srv/app/node_modules/mkdirp/bin/cmd.js', '#!/usr/bin/env node', 0o755),
      symlink('srv/app/node_modules/.bin/mkdirp', '../mkdirp/bin/cmd.js'),
      file('srv/app/node_modules/rc/package.json', pkgJson('rc', '1.2.8', { dependencies: { minimist: '^1.2.0' } })),
      file('srv/app/node_modules/rc/node_modules/minimist/package.json', pkgJson('minimist', '1.2.0')),
      file('srv/app/node_modules/rc/node_modules/minimist/index.js', 'module.exports = "nested old"'),
      ...extra,
    ];
  };

  const planned = (name: string, from: string, to: string, path: string): PlannedLibrary => ({
    ecosystem: 'npm', name, from, to, path, location: path.replace(/\/node_modules\/[^/]+\/package\.json$/, ''), reasons: ['GHSA-test'], executor: 'buildkit',
  });

  async function install(entries: TarEntry[], libraries: PlannedLibrary[], indexes: Partial<LibraryInstallContext['indexes']> = {}) {
    const { layer, fs, inventory } = await imageOf(entries);
    const work = await tmpDir('patchd-npm-exec');
    const builder = createLayerBuilder({ tmpDir: work.path });
    const ctx: LibraryInstallContext = {
      base: fs, inventory, builder, platform: { os: 'linux', architecture: 'amd64' }, dispatcher, tmpDir: work.path, logger: silentLogger(),
      indexes: { pypi: { url: 'http://127.0.0.1:9/pypi' }, npm: { url: registry.url }, goProxy: { url: 'http://127.0.0.1:9' }, nuget: { url: 'http://127.0.0.1:9' }, ...indexes },
    };
    const result = await npmExecutor.installInProcess(ctx, libraries);
    let written: WrittenLayer | undefined;
    let after: ImageFilesystem | undefined;
    if (result.applied.length > 0) {
      written = await builder.write();
      after = await ImageFilesystem.load([layer, written]);
    }
    return { ctx, result, builder, after, written, cleanup: async () => { await builder.dispose(); await work.remove(); } };
  }

  let minimist024: Buffer;
  let minimist126: Buffer;
  before(async () => {
    minimist024 = await tgz([
      { name: 'package/package.json', content: `${JSON.stringify({ name: 'minimist', version: '0.2.4', license: 'MIT', funding: { url: 'https://github.com/sponsors/ljharb' } }, null, 2)}\n` },
      { name: 'package/index.js', content: 'module.exports = "0.2.4"' },
      { name: 'package/example/parse.js', content: 'x', mode: 0o755 },
    ]);
    registry.publish('minimist', '0.2.4', minimist024);
    minimist126 = await tgz([
      { name: 'package/package.json', content: pkgJson('minimist', '1.2.6', { license: 'MIT' }) },
      { name: 'package/index.js', content: 'module.exports = "1.2.6"' },
    ]);
    registry.publish('minimist', '1.2.6', minimist126);
  });

  test('in-process: the old directory is replaced, both lockfiles carry the registry\'s integrity, the nested copy is untouched', async () => {
    const run = await install(app(), [planned('minimist', '0.0.8', '0.2.4', 'srv/app/node_modules/minimist/package.json')]);
    try {
      assert.deepEqual(run.result.failed, []);
      assert.deepEqual(run.result.deferred, []);
      assert.equal(run.result.applied.length, 1);
      assert.equal(run.result.bytesDownloaded, minimist024.length);
      const fs = run.after!;
      assert.deepEqual(fs.readdir('srv/app/node_modules/minimist'), ['example', 'index.js', 'package.json'], 'the old test/ is gone');
      assert.equal((await fs.readFile('srv/app/node_modules/minimist/index.js'))!.toString(), 'module.exports = "0.2.4"');
      assert.equal(fs.entryAt('srv/app/node_modules/minimist/example/parse.js')!.mode, 0o755);
      assert.equal(fs.entryAt('srv/app/node_modules/minimist/index.js')!.mode, 0o644);
      assert.equal(run.builder.get('srv/app/node_modules/minimist')!.type, 'opaque');
      for (const lockfile of ['srv/app/package-lock.json', 'srv/app/node_modules/.package-lock.json']) {
        const text = (await fs.readFile(lockfile))!.toString();
        assert.ok(text.endsWith('}\n'));
        const lock = JSON.parse(text) as { packages: Record<string, Record<string, unknown>> };
        assert.deepEqual(lock.packages['node_modules/minimist'], {
          version: '0.2.4', resolved: `${registry.url}/minimist/-/minimist-0.2.4.tgz`, integrity: sri(minimist024), license: 'MIT', funding: { url: 'https://github.com/sponsors/ljharb' },
        }, lockfile);
        assert.equal(lock.packages['node_modules/rc/node_modules/minimist']!.version, '1.2.0', 'another place, not planned');
      }
      assert.equal((await fs.readFile('srv/app/node_modules/rc/node_modules/minimist/index.js'))!.toString(), 'module.exports = "nested old"');
      assert.equal(fs.entryAt('srv/app/node_modules/.bin/mkdirp')?.linkname, '../mkdirp/bin/cmd.js');
    } finally {
      await run.cleanup();
    }
  });

  test('a package with nested node_modules keeps them: old files whited out one by one', async () => {
    const rc = await tgz([{ name: 'package/package.json', content: pkgJson('rc', '1.2.9', { dependencies: { minimist: '^1.2.0' }, bin: { rc: './cli.js' } }) }, { name: 'package/cli.js', content: '#!/usr/bin/env node' }]);
    registry.publish('rc', '1.2.9', rc);
    const entries = app([file('srv/app/node_modules/rc/index.js', 'old'), file('srv/app/node_modules/rc/lib/utils.js', 'old')]);
    // rc is direct in this app; plan it as if it were not (the planner's rule is tested elsewhere).
    entries[0] = file('srv/app/package.json', pkgJson('app', '1.0.0', { dependencies: { mkdirp: '0.5.1', lodash: '4.17.20' } }));
    const run = await install(entries, [planned('rc', '1.2.8', '1.2.9', 'srv/app/node_modules/rc/package.json')]);
    try {
      assert.deepEqual(run.result.failed, []);
      const fs = run.after!;
      assert.deepEqual(fs.readdir('srv/app/node_modules/rc'), ['cli.js', 'node_modules', 'package.json']);
      assert.equal((await fs.readFile('srv/app/node_modules/rc/node_modules/minimist/index.js'))!.toString(), 'module.exports = "nested old"');
      assert.equal(fs.entryAt('srv/app/node_modules/rc/cli.js')!.mode, 0o755, 'a bin target is executable');
      assert.equal(fs.entryAt('srv/app/node_modules/.bin/rc')?.linkname, '../rc/cli.js', 'the new bin is linked');
    } finally {
      await run.cleanup();
    }
  });

  test('a nested copy is patched at its own place only', async () => {
    const run = await install(app(), [planned('minimist', '1.2.0', '1.2.6', 'srv/app/node_modules/rc/node_modules/minimist/package.json')]);
    try {
      assert.deepEqual(run.result.failed, []);
      const fs = run.after!;
      assert.equal((await fs.readFile('srv/app/node_modules/rc/node_modules/minimist/index.js'))!.toString(), 'module.exports = "1.2.6"');
      assert.equal((await fs.readFile('srv/app/node_modules/minimist/index.js'))!.toString(), 'module.exports = "old"');
      const lock = JSON.parse((await fs.readFile('srv/app/package-lock.json'))!.toString()) as { packages: Record<string, Record<string, unknown>> };
      assert.equal(lock.packages['node_modules/rc/node_modules/minimist']!.integrity, sri(minimist126));
      assert.equal(lock.packages['node_modules/minimist']!.integrity, 'sha512-OLD');
    } finally {
      await run.cleanup();
    }
  });

  test('unmet dependencies defer to BuildKit: npm with an override, in the app, with the image\'s own node', async () => {
    registry.publish('minimist', '0.2.5', await tgz([{ name: 'package/package.json', content: pkgJson('minimist', '0.2.5') }]), { dependencies: { 'not-installed': '^1.0.0' } });
    const withNpm = app([
      file('usr/bin/node', 'ELF', 0o755),
      file('usr/share/nodejs/npm/bin/npm-cli.js', '#!/usr/bin/env node', 0o755),
    ]);
    const library = planned('minimist', '0.0.8', '0.2.5', 'srv/app/node_modules/minimist/package.json');
    const run = await install(withNpm, [library]);
    try {
      assert.deepEqual(run.result.applied, []);
      assert.deepEqual(run.result.failed, []);
      assert.equal(run.result.deferred.length, 1);
      assert.match(run.result.deferred[0]!.why, /not-installed@\^1\.0\.0 is not installed where srv\/app\/node_modules\/minimist would load it/);
      const base = image('registry.local/app:1', { platform: { os: 'linux', architecture: 'amd64' } });
      const state = npmExecutor.buildkitSteps!(base, [library], run.ctx);
      const { definition } = marshal(state);
      const bytes = definition.finish().toString('latin1');
      assert.ok(bytes.includes('/usr/bin/node') && bytes.includes('/usr/share/nodejs/npm/bin/npm-cli.js') && bytes.includes('--ignore-scripts'));
      assert.ok(bytes.includes(`--registry=${registry.url}/`));
      assert.ok(bytes.includes('\\"minimist@0.0.8\\": \\"0.2.5\\"'), 'the override is keyed by the installed version');
      assert.ok(bytes.includes('/srv/app'));
    } finally {
      await run.cleanup();
    }
  });

  test('the seeds\' rules surface with their reasons', async () => {
    registry.publish('npm', '10.0.0', await tgz([{ name: 'package/package.json', content: pkgJson('npm', '10.0.0') }]));
    const entries = app([
      file('usr/local/lib/node_modules/npm/package.json', pkgJson('npm', '9.6.7')),
      file('srv/yarnapp/package.json', pkgJson('y', '1.0.0', { dependencies: { a: '1' } })),
      file('srv/yarnapp/yarn.lock', '# yarn lockfile v1\n'),
      file('srv/yarnapp/node_modules/minimist/package.json', pkgJson('minimist', '0.0.8')),
      file('srv/pnpmapp/package.json', pkgJson('p', '1.0.0')),
      file('srv/pnpmapp/node_modules/.pnpm/minimist@0.0.8/node_modules/minimist/package.json', pkgJson('minimist', '0.0.8')),
    ]);
    const run = await install(entries, [
      planned('lodash', '4.17.20', '4.17.21', 'srv/app/node_modules/lodash/package.json'),
      planned('npm', '9.6.7', '10.0.0', 'usr/local/lib/node_modules/npm/package.json'),
      planned('minimist', '0.0.8', '0.2.4', 'srv/yarnapp/node_modules/minimist/package.json'),
      planned('minimist', '0.0.8', '0.2.4', 'srv/pnpmapp/node_modules/.pnpm/minimist@0.0.8/node_modules/minimist/package.json'),
      planned('minimist', '0.0.8', '0.2.99', 'srv/app/node_modules/minimist/package.json'),
    ]);
    try {
      const codes = run.result.failed.map((f) => [(f.error as NpmError).code, f.library.path.split('/').slice(0, 2).join('/')]);
      assert.deepEqual(codes, [
        ['NPM_DIRECT_DEPENDENCY', 'srv/app'], ['NPM_CORE_TOOLING', 'usr/local'], ['NPM_PROJECT_UNSUPPORTED', 'srv/yarnapp'],
        ['NPM_PROJECT_UNSUPPORTED', 'srv/pnpmapp'], ['NPM_VERSION_NOT_PUBLISHED', 'srv/app'],
      ]);
      const messages = run.result.failed.map((f) => f.error.message);
      assert.match(messages[0]!, /direct dependency of srv\/app\/package\.json: npm overrides only patch transitive dependencies \(EOVERRIDE\)/);
      assert.match(messages[1]!, /npm is core Node\.js tooling/);
      assert.match(messages[2]!, /yarn project/);
      assert.match(messages[3]!, /pnpm project/);
      assert.match(messages[4]!, /fixed version 0\.2\.99 is not published on http:\/\/127\.0\.0\.1/);
      assert.deepEqual(run.result.applied, []);
      assert.deepEqual(run.builder.paths(), [], 'nothing written');
    } finally {
      await run.cleanup();
    }
  });

  test('deferred without npm in the image: a clear failure; a tampered tarball fails only its package', async () => {
    registry.publish('minimist', '0.2.6', await tgz([{ name: 'package/package.json', content: pkgJson('minimist', '0.2.6') }]), { dependencies: { 'not-installed': '1' } });
    const noNpm = await install(app(), [planned('minimist', '0.0.8', '0.2.6', 'srv/app/node_modules/minimist/package.json')]);
    try {
      assert.equal(noNpm.result.failed.length, 1);
      const error = noNpm.result.failed[0]!.error as NpmError;
      assert.equal(error.code, 'NPM_NOT_IN_IMAGE');
      assert.match(error.message, /not-installed@1 is not installed .*the image has no npm and node/);
    } finally {
      await noNpm.cleanup();
    }
    registry.publish('minimist', '1.2.7', await tgz([{ name: 'package/package.json', content: pkgJson('minimist', '1.2.7') }]));
    registry.routes.set('/minimist/-/minimist-1.2.7.tgz', { body: minimist126, type: 'application/octet-stream' });
    const run = await install(app(), [
      planned('minimist', '0.0.8', '0.2.4', 'srv/app/node_modules/minimist/package.json'),
      planned('minimist', '1.2.0', '1.2.7', 'srv/app/node_modules/rc/node_modules/minimist/package.json'),
    ]);
    try {
      assert.deepEqual(run.result.applied.map((l) => l.to), ['0.2.4']);
      assert.equal((run.result.failed[0]!.error as NpmError).code, 'NPM_INTEGRITY_MISMATCH');
      assert.match(run.result.failed[0]!.error.message, /^minimist@1\.2\.7: /);
      assert.equal(run.builder.has('srv/app/node_modules/rc/node_modules/minimist'), false);
      const lock = JSON.parse((await run.after!.readFile('srv/app/package-lock.json'))!.toString()) as { packages: Record<string, Record<string, unknown>> };
      assert.equal(lock.packages['node_modules/rc/node_modules/minimist']!.version, '1.2.0');
    } finally {
      await run.cleanup();
    }
  });
});

test('BuildKit steps refuse values npm must not see', async () => {
  const { npmInstall } = await import('../../src/executors/buildkit/strategies/npm.js');
  const base = image('r/x:1', { platform: { os: 'linux', architecture: 'amd64' } });
  const ok = { node: '/usr/bin/node', npmCli: '/usr/lib/node_modules/npm/bin/npm-cli.js', registry: 'https://registry.npmjs.org', projects: [], globals: [] };
  assert.doesNotThrow(() => npmInstall(base, ok));
  const project = { dir: '/srv/app', packageJson: '{}', omit: [], packages: [{ name: 'minimist', version: '1.2.6' }] } as const;
  for (const bad of [
    { ...ok, registry: 'https://user:pw@registry.example' },
    { ...ok, registry: 'file:///etc' },
    { ...ok, projects: [{ ...project, dir: '/srv/../etc' }] },
    { ...ok, projects: [{ ...project, dir: '/srv/app; rm -rf /' }] },
    { ...ok, projects: [{ ...project, packages: [{ name: 'minimist --registry=http://evil', version: '1.2.6' }] }] },
    { ...ok, projects: [{ ...project, packages: [{ name: 'minimist', version: '>=1 || http://evil' }] }] },
    { ...ok, globals: [{ prefix: '/usr/local', packages: [{ name: '-g', version: '1.0.0' }] }] },
  ]) {
    assert.throws(() => npmInstall(base, bad), (e: unknown) => (e as { code?: string }).code === 'BUILD_REQUEST_INVALID', JSON.stringify(bad));
  }
});

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';
import { compareTrees } from '../harness/tree-compare.js';

// Node.js libraries patched in-process, end to end: the bookworm fixture plus
// an app layer the real npm made from the real npm registry (mkdirp 0.5.1 pins
// minimist 0.0.8; lodash 4.17.20 is direct, and installed globally too), the
// real minimist and lodash GHSA records from fixtures/osv, and `patchd patch
// --pkg-types os,library`: one layer with the OS fixes and the libraries, read
// back by skopeo and umoci, loaded by the real node, and compared file by
// file with what the real npm writes when given Copa's override.

const repoRoot = new URL('../..', import.meta.url).pathname;
const osv = join(repoRoot, 'fixtures/osv');
let registry: RunningRegistry;
let work: string;
let pushed: { digest: string; layerDigest: string };
let image: string;
let appTar: string;

const patchd = (args: string[]) =>
  run('npx', ['--no-install', 'patchd', ...args], { cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '' } });

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'patchd-node-e2e-'));
  appTar = (await run('bash', [join(repoRoot, 'test/fixtures/build-node-app.sh')])).stdout.trim().split('\n').at(-1)!;
  pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), extraLayers: [appTar], registryHost: registry.host, repository: 'fixtures/node', tag: 'v1' });
  image = `${registry.host}/fixtures/node:v1`;
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Lockfile { packages: Record<string, { version?: string; resolved?: string; integrity?: string }> }

/** What the public registry says about a version: the lockfiles must carry exactly this. */
async function published(name: string, version: string): Promise<{ tarball: string; integrity: string }> {
  const { stdout } = await run('curl', ['-sf', '-H', 'accept: application/vnd.npm.install-v1+json', `https://registry.npmjs.org/${name}`]);
  const dist = (JSON.parse(stdout) as { versions: Record<string, { dist: { tarball: string; integrity: string } }> }).versions[version]!.dist;
  return { tarball: dist.tarball, integrity: dist.integrity };
}

async function unpack(tag: string, name: string): Promise<string> {
  const layout = join(work, `layout-${name}`);
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/fixtures/node:${tag}`, `oci:${layout}:${name}`]);
  const bundle = join(work, `bundle-${name}`);
  await run('umoci', ['unpack', '--image', `${layout}:${name}`, bundle]);
  return join(bundle, 'rootfs');
}

const nodeEval = async (script: string, cwd?: string) => (await run('node', ['-e', script], cwd ? { cwd } : {})).stdout.trim();

test('patch --pkg-types os,library: one added layer; minimist (transitive) and the global lodash at their fixes, with the registry\'s integrity in both lockfiles', { timeout: 20 * 60_000 }, async () => {
  const started = Date.now();
  const { stdout } = await patchd(['patch', '-i', image, '--advisories', osv, '--pkg-types', 'os,library', '--library-patch-level', 'minor', '--cache-dir', join(work, 'cache')]);
  const seconds = (Date.now() - started) / 1000;
  console.log(`patch --pkg-types os,library (OS packages and npm libraries, in-process): ${seconds.toFixed(1)}s`);
  assert.match(stdout, /^libssl3 3\.0\.20-1~deb12u2 -> \S+ {2}\(DEBIAN-CVE-/m);
  assert.match(stdout, /^minimist \(npm, srv\/app\) 0\.0\.8 -> 0\.2\.4 {2}\(GHSA-vh95-rmgr-6w4m, GHSA-xvch-5gv4-984h\)$/m);
  assert.match(stdout, /^lodash \(npm, usr\/local\/lib\) 4\.17\.20 -> 4\.17\.21 {2}\(GHSA-35jh-r3h4-6jhm\)$/m);
  assert.match(stdout, /^not patched: lodash 4\.17\.20 \(npm\): direct dependency of srv\/app\/package\.json: npm overrides only patch transitive dependencies \(EOVERRIDE\)/m);
  assert.doesNotMatch(stdout, /^failed: /m);
  assert.match(stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);

  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}-patched`])).stdout) as { layers: { digest: string }[] };
  assert.equal(manifest.layers.length, 3, 'exactly one layer added to the two');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest, 'original layers unchanged');

  const root = await unpack('v1-patched', 'patched');
  const app = join(root, 'srv/app');
  assert.equal(await nodeEval(`console.log(require(${JSON.stringify(join(app, 'node_modules/minimist/package.json'))}).version)`), '0.2.4');
  // The module itself loads from the app, and parses as 0.2.4 does.
  assert.equal(await nodeEval(`console.log(JSON.stringify(require('minimist')(['--x', '1', 'y'])))`, app), '{"_":["y"],"x":1}');
  // mkdirp, which requires it, still works against it.
  assert.equal(await nodeEval(`console.log(typeof require('mkdirp').sync)`, app), 'function');
  const minimist = await published('minimist', '0.2.4');
  for (const file of ['package-lock.json', 'node_modules/.package-lock.json']) {
    const lock = JSON.parse(await readFile(join(app, file), 'utf8')) as Lockfile;
    assert.deepEqual({ ...lock.packages['node_modules/minimist'] }, { ...lock.packages['node_modules/minimist'], version: '0.2.4', resolved: minimist.tarball, integrity: minimist.integrity }, file);
    assert.equal(lock.packages['node_modules/rc/node_modules/minimist']?.version, '1.2.8', `${file}: the nested copy is another place, not planned`);
  }
  assert.equal(await nodeEval(`console.log(require(${JSON.stringify(join(app, 'node_modules/rc/node_modules/minimist/package.json'))}).version)`), '1.2.8');
  const text = await readFile(join(app, 'package-lock.json'), 'utf8');
  assert.ok(text.startsWith('{\n  "name": "node-demo",') && text.endsWith('}\n'), 'npm\'s formatting kept');

  // The oracle: the real npm, given what Copa gives it (an override, --ignore-scripts; npm install -g for a global), writes the same.
  const oracle = join(work, 'oracle');
  await run('mkdir', ['-p', oracle]);
  await run('tar', ['-xf', appTar, '-C', oracle]);
  const pkgPath = join(oracle, 'srv/app/package.json');
  const pkg = JSON.parse(await readFile(pkgPath, 'utf8')) as Record<string, unknown>;
  await writeFile(pkgPath, `${JSON.stringify({ ...pkg, overrides: { 'minimist@0.0.8': '0.2.4' } }, null, 2)}\n`);
  const npmFlags = ['--ignore-scripts', '--no-audit', '--no-fund', '--omit-lockfile-registry-resolved=false', '--registry=https://registry.npmjs.org/'];
  await run('npm', ['install', ...npmFlags], { cwd: join(oracle, 'srv/app') });
  await run('npm', ['install', '-g', `--prefix=${join(oracle, 'usr/local')}`, ...npmFlags, 'lodash@4.17.21']);
  for (const file of ['srv/app/package-lock.json', 'srv/app/node_modules/.package-lock.json']) {
    assert.equal(await readFile(join(root, file), 'utf8'), await readFile(join(oracle, file), 'utf8'), `${file} is byte for byte what npm writes`);
  }
  for (const dir of ['srv/app/node_modules', 'usr/local/lib/node_modules']) {
    const differences = await compareTrees(join(root, dir), join(oracle, dir), { ignore: () => false });
    assert.deepEqual(differences, [], `${dir} differs from npm's:\n${differences.slice(0, 20).map((d) => JSON.stringify(d)).join('\n')}`);
  }

  const lodash = join(root, 'usr/local/lib/node_modules/lodash');
  assert.equal(await nodeEval(`console.log(require(${JSON.stringify(join(lodash, 'package.json'))}).version)`), '4.17.21');
  assert.equal(await nodeEval(`console.log(require(${JSON.stringify(lodash)}).VERSION)`), '4.17.21');
  assert.equal(await nodeEval(`console.log(require(${JSON.stringify(join(app, 'node_modules/lodash/package.json'))}).version)`), '4.17.20', 'the app\'s direct lodash is reported, not patched');
});

test('library-only patch of the same image: the npm part alone, timed', { timeout: 10 * 60_000 }, async () => {
  const started = Date.now();
  const { stdout } = await patchd(['patch', '-i', image, '--advisories', osv, '--pkg-types', 'library', '--library-patch-level', 'minor', '--tag-suffix=-libs', '--cache-dir', join(work, 'cache')]);
  const seconds = (Date.now() - started) / 1000;
  console.log(`patch --pkg-types library (npm in-process only): ${seconds.toFixed(1)}s`);
  assert.match(stdout, /^minimist \(npm, srv\/app\) 0\.0\.8 -> 0\.2\.4 /m);
  assert.doesNotMatch(stdout, /^libssl3 /m);
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}-libs`])).stdout) as { layers: { digest: string }[] };
  assert.equal(manifest.layers.length, 3);
  // The added layer holds the two packages and the two lockfiles, nothing else.
  const layout = join(work, 'layout-libs');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-libs`, `oci:${layout}:libs`]);
  const blob = join(layout, 'blobs/sha256', manifest.layers[2]!.digest.slice('sha256:'.length));
  const names = (await run('tar', ['-tzf', blob])).stdout.trim().split('\n').map((n) => n.replace(/\/$/, ''));
  const outside = names.filter((n) => !/^srv\/app\/node_modules\/minimist(\/|$)|^srv\/app\/(package-lock\.json|node_modules\/\.package-lock\.json)$|^usr\/local\/lib\/node_modules\/lodash(\/|$)/.test(n));
  assert.deepEqual(outside, []);
  assert.ok(names.includes('srv/app/node_modules/minimist/.wh..wh..opq'), 'the old version\'s files are hidden');
  assert.ok(seconds < 120, `${seconds}s`);
});

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { startNpmMirror, type NpmMirror } from '../harness/package-indexes.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// The npm fallback end to end: node-fetch 2.6.7 (the fix of GHSA-r683-j2x4-v87g
// for the 2.6.0 that cross-fetch 3.0.4 pins) needs whatwg-url, which the app
// does not have, so it cannot be placed in-process. patchd hands it to a real
// buildkitd, where the image's own npm (Debian's) installs it with an
// override and --ignore-scripts; the diff is the one patch layer.
//
// Both patchd and the image's npm use the npm registry through a loopback
// mirror (`--npm-registry`): the image's CA store does not know this machine's
// egress CA, and a mirror is what a private deployment has anyway. The mirror
// passes requests to registry.npmjs.org and rewrites tarball URLs to itself,
// as Verdaccio or Artifactory do.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let work: string;
let image: string;
let pushed: { digest: string; layerDigest: string };
let mirror: NpmMirror;

const fixture = async (what: string) => (await run('bash', [join(repoRoot, 'test/fixtures/build-node-app.sh'), what], { timeoutMs: 30 * 60_000 })).stdout.trim().split('\n').at(-1)!;

before(async () => {
  [registry, buildkitd, mirror] = await Promise.all([startRegistry(), startBuildkitd(), startNpmMirror()]);
  work = await mkdtemp(join(tmpdir(), 'patchd-node-buildkit-e2e-'));
  pushed = await pushRootfsImage({ tarPath: await fixture('node-base'), extraLayers: [await fixture('fetch-app')], registryHost: registry.host, repository: 'fixtures/node-fetch', tag: 'v1' });
  image = `${registry.host}/fixtures/node-fetch:v1`;
});

after(async () => {
  await Promise.all([registry?.stop(), buildkitd?.stop(), mirror?.close()]);
  if (work) await rm(work, { recursive: true, force: true });
});

test('a fix whose dependencies are not installed: npm with an override in BuildKit, one layer, the app loads it', { timeout: 30 * 60_000 }, async () => {
  const report = join(work, 'trivy.json');
  await writeFile(report, JSON.stringify({
    SchemaVersion: 2, ArtifactName: image,
    Results: [{ Target: 'Node.js', Class: 'lang-pkgs', Type: 'node-pkg', Vulnerabilities: [{
      VulnerabilityID: 'GHSA-r683-j2x4-v87g', PkgName: 'node-fetch', PkgPath: 'srv/fetchapp/node_modules/node-fetch/package.json',
      InstalledVersion: '2.6.0', FixedVersion: '3.1.1, 2.6.7', Severity: 'HIGH', Title: 'node-fetch forwards secure headers to untrusted sites',
    }] }],
  }));
  const started = Date.now();
  const { stdout } = await run('npx', ['--no-install', 'patchd', 'patch', '-i', image, '-r', report, '--pkg-types', 'library', '--npm-registry', mirror.url, '--buildkit-addr', buildkitd.address, '--cache-dir', join(work, 'cache')], { cwd: repoRoot });
  console.log(`patch through BuildKit (npm install with an override): ${((Date.now() - started) / 1000).toFixed(1)}s`);
  assert.match(stdout, /^node-fetch \(npm, srv\/fetchapp\) 2\.6\.0 -> 2\.6\.7 {2}\(GHSA-r683-j2x4-v87g\)$/m);
  assert.doesNotMatch(stdout, /^failed: /m);
  assert.match(stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);

  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}-patched`])).stdout) as { layers: { digest: string }[] };
  assert.equal(manifest.layers.length, 3, 'exactly one layer added');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest);
  const layout = join(work, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${layout}:patched`]);
  const names = (await run('tar', ['-tzf', join(layout, 'blobs/sha256', manifest.layers[2]!.digest.slice('sha256:'.length))])).stdout.trim().split('\n').map((n) => n.replace(/\/$/, ''));
  const outside = names.filter((n) => !n.startsWith('srv/fetchapp/') && !['srv', 'srv/fetchapp'].includes(n));
  assert.deepEqual(outside, [], 'npm wrote nothing outside the app (its cache is a BuildKit cache mount)');
  const bundle = join(work, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:patched`, bundle]);
  const app = join(bundle, 'rootfs/srv/fetchapp');

  const node = async (script: string) => (await run('node', ['-e', script], { cwd: app })).stdout.trim();
  assert.equal(await node(`console.log(require('./node_modules/node-fetch/package.json').version)`), '2.6.7');
  assert.match(await node(`console.log(require('./node_modules/whatwg-url/package.json').version)`), /^5\./, 'its new dependency came with it');
  assert.equal(await node(`console.log(typeof require('cross-fetch'))`), 'function', 'the app\'s direct dependency loads the new node-fetch');
  const pkg = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as { overrides?: Record<string, string> };
  assert.deepEqual(pkg.overrides, { 'node-fetch@2.6.0': '2.6.7' });
  const { stdout: registryDoc } = await run('curl', ['-sf', '-H', 'accept: application/vnd.npm.install-v1+json', 'https://registry.npmjs.org/node-fetch']);
  const integrity = (JSON.parse(registryDoc) as { versions: Record<string, { dist: { integrity: string } }> }).versions['2.6.7']!.dist.integrity;
  const lock = JSON.parse(await readFile(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string; resolved?: string }> };
  assert.equal(lock.packages['node_modules/node-fetch']?.version, '2.6.7');
  assert.equal(lock.packages['node_modules/node-fetch']?.integrity, integrity);
  assert.ok(mirror.requests.includes('/node-fetch/-/node-fetch-2.6.7.tgz'), 'npm fetched through the configured registry');
  assert.equal(lock.packages['node_modules/cross-fetch']?.version, '3.0.4', 'nothing else moved');
});

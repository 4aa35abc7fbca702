import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startBuildkitd } from '../harness/buildkitd.js';
import { appLayersDir, pushRootfsImage } from '../harness/fixture-image.js';
import { startSimpleIndex } from '../harness/package-indexes.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// Python libraries patched for real, in-process: an image built here from
// Debian's python3 with pip-installed libraries in /usr/local (Debian's
// dist-packages) and in a venv (test/fixtures/build-python-app.sh), a real
// registry, the real PyPI; the patched image is unpacked by umoci and the
// image's own interpreter (chroot) imports what patchd installed.

const repoRoot = new URL('../..', import.meta.url).pathname;
const osv = join(repoRoot, 'fixtures/osv');
const system = 'usr/local/lib/python3.11/dist-packages';
const venv = 'opt/app/venv/lib/python3.11/site-packages';
let registry: RunningRegistry;
let work: string;
let image: string;
let pushedLayer: string;

const patchd = (args: string[], opts: { allowFailure?: boolean } = {}) =>
  run('npx', ['--no-install', 'patchd', ...args, '--cache-dir', join(work, 'cache')], { cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '' }, ...(opts.allowFailure ? { allowFailure: true } : {}) });

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'patchd-python-e2e-'));
  const tar = (await run('bash', [join(repoRoot, 'test/fixtures/build-python-app.sh')], { cwd: repoRoot })).stdout.trim().split('\n').at(-1)!;
  const pushed = await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'fixtures/python-app', tag: 'v1' });
  pushedLayer = pushed.layerDigest;
  image = `${registry.host}/fixtures/python-app:v1`;
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function manifestOf(ref: string): Promise<{ layers: { digest: string }[] }> {
  return JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout);
}

/** skopeo copies the image into an OCI layout, umoci unpacks it: the root as a container runtime would see it. */
async function unpack(ref: string, name: string): Promise<string> {
  const layout = join(work, `layout-${name}`);
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:${name}`]);
  const bundle = join(work, `bundle-${name}`);
  await run('umoci', ['unpack', '--image', `${layout}:${name}`, bundle]);
  return join(bundle, 'rootfs');
}

/** The image's own interpreter, chrooted into the unpacked root (no bytecode written, so what we inspect stays as patchd left it). */
const inRoot = (root: string, args: string[], opts: { allowFailure?: boolean } = {}) =>
  run('chroot', [root, '/usr/bin/env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin', 'LC_ALL=C.UTF-8', 'PYTHONDONTWRITEBYTECODE=1', ...args], opts);

/** A program for the image's python: every RECORD row of `name` in the given place hashes to what RECORD says. */
const checkRecord = (name: string) => `
import base64, csv, hashlib, importlib.metadata as md, os, sys
d = md.distribution(${JSON.stringify(name)})
bad = []
for f in d.files:
    if not f.hash: continue
    data = open(f.locate(), 'rb').read()
    digest = base64.urlsafe_b64encode(hashlib.new(f.hash.mode, data).digest()).rstrip(b'=').decode()
    if digest != f.hash.value or len(data) != f.size: bad.append(str(f))
print(d.version, d.read_text('INSTALLER').strip(), len(list(d.files)), 'bad:', bad)
`;

const distInfos = async (dir: string, name: string) => (await readdir(dir)).filter((e) => e.toLowerCase().startsWith(`${name}-`) && e.endsWith('.dist-info'));

test('OSV advisories, --pkg-types os,library: OS packages and Python libraries in one added layer, installed from wheels in-process', { timeout: 20 * 60_000 }, async () => {
  const started = Date.now();
  const { stdout } = await patchd(['patch', '-i', image, '--pkg-types', 'os,library', '--advisories', osv]);
  const elapsed = Date.now() - started;
  assert.match(stdout, /^libssl3 3\.0\.20-1~deb12u2 -> 3\.0\.22-1~deb12u2 /m);
  assert.match(stdout, new RegExp(`^urllib3 \\(pypi, ${system}\\) 1\\.26\\.5 -> 1\\.26\\.19 `, 'm'));
  assert.match(stdout, new RegExp(`^urllib3 \\(pypi, ${venv}\\) 2\\.0\\.5 -> 2\\.0\\.7 `, 'm'));
  const certifi = new RegExp(`^certifi \\(pypi, ${system}\\) 2022\\.12\\.7 -> (\\S+) `, 'm').exec(stdout)?.[1];
  assert.ok(certifi, stdout);
  assert.match(stdout, /^not patched: requests 2\.25\.1 \(pypi\): needs 2\.31\.0, a bigger change than --library-patch-level patch allows$/m);
  assert.match(stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);
  process.stdout.write(`# python e2e: os,library patch (4 deb + 4 wheels) took ${elapsed} ms\n`);

  const manifest = await manifestOf(`${image}-patched`);
  assert.equal(manifest.layers.length, 2, 'exactly one layer added');
  assert.equal(manifest.layers[0]!.digest, pushedLayer, 'the original layer is unchanged');
  const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${image}-patched`])).stdout) as { history: { created_by?: string }[] };
  assert.match(config.history.at(-1)!.created_by ?? '', /^patchd \(inprocess\): .*urllib3 1\.26\.5 -> 1\.26\.19/);

  const root = await unpack(`${image}-patched`, 'osv');
  // Exactly one dist-info per package in each place; the new ones say who installed them.
  for (const [dir, name, version] of [[system, 'urllib3', '1.26.19'], [venv, 'urllib3', '2.0.7'], [system, 'certifi', certifi], [venv, 'certifi', certifi], [system, 'requests', '2.25.1']] as const) {
    assert.deepEqual(await distInfos(join(root, dir), name), [`${name}-${version}.dist-info`], `${name} in ${dir}`);
  }
  const pycs = (await run('find', [join(root, system), join(root, venv), '-name', '*.pyc'])).stdout.trim();
  assert.equal(pycs, '', 'no bytecode the image did not have');

  // The image's own interpreters import the fixed versions (and requests still works over the new urllib3).
  const sys = await inRoot(root, ['/usr/bin/python3', '-c', 'import urllib3, requests, importlib.metadata as md; print(urllib3.__version__, requests.__version__, md.version("certifi"), urllib3.__file__)']);
  assert.equal(sys.stdout.trim(), `1.26.19 2.25.1 ${certifi} /usr/local/lib/python3.11/dist-packages/urllib3/__init__.py`);
  const venvPy = await inRoot(root, ['/opt/app/venv/bin/python', '-c', 'import urllib3, certifi, os, importlib.metadata as md; print(urllib3.__version__, md.version("certifi"), os.path.exists(certifi.where()))']);
  assert.equal(venvPy.stdout.trim(), `2.0.7 ${certifi} True`);
  // Every RECORD row hashes right, as importlib.metadata reads it; INSTALLER is ours.
  for (const py of ['/usr/bin/python3', '/opt/app/venv/bin/python']) {
    const checked = await inRoot(root, [py, '-c', checkRecord('urllib3')]);
    assert.match(checked.stdout, /^\S+ patchd \d+ bad: \[\]$/m, `${py}: ${checked.stdout}`);
  }
  // pip itself accepts the install: it lists it, checks it, and can uninstall it by our RECORD.
  const list = JSON.parse((await inRoot(root, ['/opt/app/venv/bin/python', '-m', 'pip', 'list', '--format=json', '--disable-pip-version-check'])).stdout) as { name: string; version: string }[];
  assert.deepEqual(list.filter((p) => ['urllib3', 'certifi'].includes(p.name)).map((p) => `${p.name} ${p.version}`).sort(), [`certifi ${certifi}`, 'urllib3 2.0.7']);
  await inRoot(root, ['/opt/app/venv/bin/python', '-m', 'pip', 'uninstall', '-y', '-q', 'urllib3', '--disable-pip-version-check']);
  assert.deepEqual((await readdir(join(root, venv))).filter((e) => e.startsWith('urllib3')), [], 'pip uninstalled every file our RECORD names');
  // chardet's script (not patched) is untouched; REQUESTED carried over.
  assert.match(await readFile(join(root, 'usr/local/bin/chardetect'), 'utf8'), /^#!\/usr\/bin\/python3\.11\n/);
  await stat(join(root, system, 'urllib3-1.26.19.dist-info/REQUESTED'));
});

test('a binary wheel (cp311 manylinux) from a Trivy report: console script regenerated for the venv\'s interpreter', { timeout: 10 * 60_000 }, async () => {
  const report = join(work, 'charset.json');
  await writeFile(report, JSON.stringify({
    SchemaVersion: 2, ArtifactName: image,
    Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
      { VulnerabilityID: 'TEST-CHARSET-1', PkgName: 'charset-normalizer', PkgPath: `${venv}/charset_normalizer-3.1.0.dist-info/METADATA`, InstalledVersion: '3.1.0', FixedVersion: '3.3.2', Severity: 'HIGH' },
    ] }],
  }));
  const started = Date.now();
  const { stdout, stderr } = await patchd(['patch', '-i', image, '-r', report, '--pkg-types', 'library', '--library-patch-level', 'minor', '--tag-suffix=-charset']);
  const elapsed = Date.now() - started;
  assert.match(stdout, new RegExp(`^charset-normalizer \\(pypi, ${venv}\\) 3\\.1\\.0 -> 3\\.3\\.2 {2}\\(TEST-CHARSET-1\\)$`, 'm'));
  assert.match(stderr, /"wheel":"charset_normalizer-3\.3\.2-cp311-cp311-manylinux_2_17_x86_64\.manylinux2014_x86_64\.whl"/);
  process.stdout.write(`# python e2e: library-only patch (1 binary wheel) took ${elapsed} ms\n`);
  assert.equal((await manifestOf(`${image}-charset`)).layers.length, 2);

  const root = await unpack(`${image}-charset`, 'charset');
  assert.deepEqual(await distInfos(join(root, venv), 'charset_normalizer'), ['charset_normalizer-3.3.2.dist-info']);
  const script = await readFile(join(root, 'opt/app/venv/bin/normalizer'), 'utf8');
  assert.match(script, /^#!\/opt\/app\/venv\/bin\/python\n# -\*- coding: utf-8 -\*-\n/);
  assert.equal(((await stat(join(root, 'opt/app/venv/bin/normalizer'))).mode & 0o777), 0o755);
  const version = await inRoot(root, ['/opt/app/venv/bin/normalizer', '--version']);
  assert.match(version.stdout + version.stderr, /Charset-Normalizer 3\.3\.2/);
  const compiled = await inRoot(root, ['/opt/app/venv/bin/python', '-c', 'from charset_normalizer import md; print(md.__file__)']);
  assert.match(compiled.stdout, /md\.cpython-311-x86_64-linux-gnu\.so$/m, 'the compiled extension of the cp311 wheel loads');
  const checked = await inRoot(root, ['/opt/app/venv/bin/python', '-c', checkRecord('charset-normalizer')]);
  assert.match(checked.stdout, /^3\.3\.2 patchd \d+ bad: \[\]$/m, checked.stdout);
});

test('refusals: a fix the index does not publish, a Requires-Python the interpreter misses, a source-only release without BuildKit', { timeout: 10 * 60_000 }, async () => {
  // 1. The planner checks the fixed version exists on the index.
  const missing = join(work, 'missing.json');
  await writeFile(missing, JSON.stringify({ SchemaVersion: 2, Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
    { VulnerabilityID: 'TEST-MISSING-1', PkgName: 'urllib3', PkgPath: `${system}/urllib3-1.26.5.dist-info/METADATA`, InstalledVersion: '1.26.5', FixedVersion: '1.26.99', Severity: 'HIGH' },
  ] }] }));
  const dry = await patchd(['patch', '-i', image, '-r', missing, '--pkg-types', 'library', '--dry-run']);
  assert.match(dry.stdout, /^not patched: urllib3 1\.26\.5 \(pypi\): fixed version 1\.26\.99 is not published on https:\/\/pypi\.org\/pypi\/urllib3\/json$/m);

  // 2. A source-only release (future 0.18.3) and no BuildKit: a clear failure, nothing pushed.
  const future = join(work, 'future.json');
  await writeFile(future, JSON.stringify({ SchemaVersion: 2, Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
    { VulnerabilityID: 'GHSA-v3c5-jqr6-7qm8', PkgName: 'future', InstalledVersion: '0.18.2', FixedVersion: '0.18.3', Severity: 'HIGH' },
  ] }] }));
  const noBuildkit = await patchd(['patch', '-i', image, '-r', future, '--pkg-types', 'library', '--tag-suffix=-future'], { allowFailure: true });
  assert.equal(noBuildkit.code, 1);
  assert.match(noBuildkit.stderr, /future \(pypi\): no wheel of future 0\.18\.3 fits Python 3\.11\.2 on manylinux_2_36_x86_64 \(the index has only source distributions\): pip must build it in the image, which needs BuildKit \(no BuildKit daemon is configured: --buildkit-addr\)/);
  const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/python-app`])).stdout) as { Tags: string[] };
  assert.ok(!tags.Tags.includes('v1-future'), tags.Tags.join(' '));

  // 3. Requires-Python: a Python 3.7 site-packages (the app layer's, moved) and urllib3 2.2.2, which needs >=3.8.
  const apps = await appLayersDir();
  const old = join(work, 'py37');
  await mkdir(old, { recursive: true });
  await run('tar', ['-xf', join(apps, 'python.tar'), '-C', old]);
  await rename(join(old, 'usr/local/lib/python3.11'), join(old, 'usr/local/lib/python3.7'));
  await rm(join(old, 'opt'), { recursive: true });
  await run('tar', ['--numeric-owner', '-C', old, '-cf', join(work, 'py37.tar'), '.']);
  await pushRootfsImage({ tarPath: join(work, 'py37.tar'), registryHost: registry.host, repository: 'fixtures/py37', tag: 'v1' });
  const requires = join(work, 'requires.json');
  await writeFile(requires, JSON.stringify({ SchemaVersion: 2, Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
    { VulnerabilityID: 'GHSA-34jh-p97f-mpxf', PkgName: 'urllib3', InstalledVersion: '1.26.5', FixedVersion: '2.2.2', Severity: 'MODERATE' },
  ] }] }));
  const py37 = await patchd(['patch', '-i', `${registry.host}/fixtures/py37:v1`, '-r', requires, '--pkg-types', 'library', '--library-patch-level', 'major'], { allowFailure: true });
  assert.equal(py37.code, 1);
  assert.match(py37.stderr, /urllib3 \(pypi\): urllib3 2\.2\.2 requires Python >=3\.8, but the image's interpreter for \/usr\/local\/lib\/python3\.7\/site-packages is Python 3\.7 .*\[REQUIRES_PYTHON\]/);
});

test('an arm64 image (pure-Python site-packages and a venv, config architecture arm64) is patched on this amd64 machine without emulation', { timeout: 10 * 60_000 }, async () => {
  const apps = await appLayersDir();
  await pushRootfsImage({ tarPath: join(apps, 'python.tar'), registryHost: registry.host, repository: 'fixtures/python-arm64', tag: 'v1', architecture: 'arm64' });
  const ref = `${registry.host}/fixtures/python-arm64:v1`;
  const { stdout } = await patchd(['patch', '-i', ref, '--pkg-types', 'library', '--advisories', osv]);
  assert.match(stdout, /^urllib3 \(pypi, usr\/local\/lib\/python3\.11\/site-packages\) 1\.26\.5 -> 1\.26\.19 /m);
  assert.match(stdout, /^urllib3 \(pypi, opt\/app\/venv\/lib\/python3\.11\/site-packages\) 2\.0\.5 -> 2\.0\.7 /m);
  const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${ref}-patched`])).stdout) as { architecture: string };
  assert.equal(config.architecture, 'arm64');
  assert.equal((await manifestOf(`${ref}-patched`)).layers.length, 2);
  const root = await unpack(`${ref}-patched`, 'arm64');
  // No arm64 interpreter runs here: the host's python3 imports the unpacked site-packages.
  for (const [dir, version] of [['usr/local/lib/python3.11/site-packages', '1.26.19'], ['opt/app/venv/lib/python3.11/site-packages', '2.0.7']] as const) {
    const got = await run('python3', ['-I', '-c', `import sys; sys.path.insert(0, ${JSON.stringify(join(root, dir))}); sys.dont_write_bytecode = True; import urllib3; print(urllib3.__version__, urllib3.__file__.startswith(${JSON.stringify(root)}))`]);
    assert.equal(got.stdout.trim(), `${version} True`);
    assert.deepEqual(await distInfos(join(root, dir), 'urllib3'), [`urllib3-${version}.dist-info`]);
  }
});

test('a source-only release goes to pip in BuildKit: the venv\'s own interpreter builds it from a private simple index, into the same one layer', { timeout: 30 * 60_000 }, async () => {
  // The private index: future's two source releases, the build backend pip's build isolation fetches, and a urllib3 wheel.
  const files = join(work, 'index-files');
  await run('python3', ['-m', 'pip', 'download', '-q', '--no-deps', '--no-binary', ':all:', '--disable-pip-version-check', '-d', files, 'future==0.18.2'], { env: { ...process.env, PIP_FIND_LINKS: '' } });
  await run('python3', ['-m', 'pip', 'download', '-q', '--no-deps', '--no-binary', ':all:', '--disable-pip-version-check', '-d', files, 'future==0.18.3'], { env: { ...process.env, PIP_FIND_LINKS: '' } });
  await run('python3', ['-m', 'pip', 'download', '-q', '--no-deps', '--only-binary', ':all:', '--python-version', '3.11', '--disable-pip-version-check', '-d', files, 'setuptools<76', 'wheel', 'urllib3==2.0.7'], { env: { ...process.env, PIP_FIND_LINKS: '' } });
  const index = await startSimpleIndex((await readdir(files)).map((f) => join(files, f)));
  const buildkitd = await startBuildkitd();
  try {
    const report = join(work, 'future-bk.json');
    await writeFile(report, JSON.stringify({ SchemaVersion: 2, Results: [{ Target: 'Python', Class: 'lang-pkgs', Type: 'python-pkg', Vulnerabilities: [
      { VulnerabilityID: 'GHSA-v3c5-jqr6-7qm8', PkgName: 'future', InstalledVersion: '0.18.2', FixedVersion: '0.18.3', Severity: 'HIGH' },
      { VulnerabilityID: 'GHSA-g4mx-q9vg-27p4', PkgName: 'urllib3', PkgPath: `${venv}/urllib3-2.0.5.dist-info/METADATA`, InstalledVersion: '2.0.5', FixedVersion: '2.0.7', Severity: 'MODERATE' },
    ] }] }));
    const started = Date.now();
    const result = await patchd(['patch', '-i', image, '-r', report, '--pkg-types', 'library', '--pypi-index', index.url, '--buildkit-addr', buildkitd.address, '--tag-suffix=-future-bk'], { allowFailure: true });
    const elapsed = Date.now() - started;
    assert.equal(result.code, 0, result.stderr.slice(-4000));
    process.stdout.write(`# python e2e: BuildKit pip fallback (future from source) + urllib3 wheel took ${elapsed} ms\n`);
    assert.match(result.stdout, new RegExp(`^future \\(pypi, ${venv}\\) 0\\.18\\.2 -> 0\\.18\\.3 `, 'm'));
    assert.match(result.stdout, new RegExp(`^urllib3 \\(pypi, ${venv}\\) 2\\.0\\.5 -> 2\\.0\\.7 `, 'm'));
    assert.ok(index.requested.includes('/files/urllib3-2.0.7-py3-none-any.whl'), 'the urllib3 wheel, installed in-process, came from the private index');
    assert.ok(index.requested.includes('/files/future-0.18.3.tar.gz'), `pip in BuildKit fetched the sdist from the private index: ${index.requested.join(' ')}`);
    assert.equal((await manifestOf(`${image}-future-bk`)).layers.length, 2, 'one layer for the in-process wheel and the BuildKit diff');
    const root = await unpack(`${image}-future-bk`, 'future-bk');
    assert.deepEqual(await distInfos(join(root, venv), 'future'), ['future-0.18.3.dist-info']);
    assert.equal((await readFile(join(root, venv, 'future-0.18.3.dist-info/INSTALLER'), 'utf8')).trim(), 'pip');
    const got = await inRoot(root, ['/opt/app/venv/bin/python', '-c', 'import future, importlib.metadata as md; print(future.__version__, md.version("urllib3"))']);
    assert.equal(got.stdout.trim(), '0.18.3 2.0.7');
    const pycs = (await run('find', [join(root, venv), '-name', '*.pyc'])).stdout.trim();
    assert.equal(pycs, '', 'pip ran with --no-compile and without writing its own bytecode');
    assert.match(await readFile(join(root, 'opt/app/venv/bin/futurize'), 'utf8'), /^#!\/opt\/app\/venv\/bin\/python\n/);
  } finally {
    await buildkitd.stop();
    await index.close();
  }
});

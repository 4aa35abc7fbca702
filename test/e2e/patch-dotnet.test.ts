import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { dotnetContainerProgram, dotnetProgramEntry } from '../../src/executors/dotnet/container-program.js';
import { demoApp, newtonsoft13Nupkg, startFlatContainer, type FlatContainer } from '../harness/dotnet-fixtures.js';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// .NET end to end through the real CLI and a real registry: an image with a
// net6.0 app using Newtonsoft.Json 12.0.1 (GHSA-5crp-9r3c-p9vr, fixed in
// 13.0.1), a loopback NuGet flat container standing in for a private mirror
// (NuGet itself is out of reach here), `patchd patch --pkg-types library`.
// Then the BuildKit step's program, run by plain node on the same app, must
// write the same bytes: both paths end in the same update.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let flat: FlatContainer;
let work: string;
let image: string;
let pushed: { digest: string; layerDigest: string };
let nupkg: { path: string; sha512: string };
let original: string;

before(async () => {
  // The CLI runs from dist/, and so does the BuildKit step's program: build it as it is now.
  const build = await run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, allowFailure: true });
  if (!existsSync(join(repoRoot, 'dist/executors/dotnet/executor.js'))) throw new Error(`tsc did not build dist/: ${build.stdout}${build.stderr}`);
  work = await mkdtemp(join(tmpdir(), 'patchd-dotnet-e2e-'));
  original = join(work, 'original');
  await demoApp(original);
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', original, '-cf', join(work, 'app.tar'), '.']);
  registry = await startRegistry();
  pushed = await pushRootfsImage({ tarPath: join(work, 'app.tar'), registryHost: registry.host, repository: 'fixtures/dotnet-app', tag: 'v1' });
  image = `${registry.host}/fixtures/dotnet-app:v1`;
  nupkg = await newtonsoft13Nupkg(work);
  flat = await startFlatContainer([{ id: 'Newtonsoft.Json', version: '13.0.1', file: nupkg.path }], { 'newtonsoft.json': ['11.0.2', '12.0.1', '12.0.3'] });
});

after(async () => {
  await flat?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(dir, e.name));
      else out.push(relative(root, join(dir, e.name)));
    }
  };
  await walk(root);
  return out.sort();
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let patchedApp: string;

test('patchd patch --pkg-types library: Newtonsoft.Json 12.0.1 -> 13.0.1 in-process from the mirror, one layer, the DLL swapped, deps.json rewritten', { timeout: 10 * 60_000 }, async () => {
  const { stdout } = await run('node', [
    'bin/patchd.js', 'patch', '-i', image, '--pkg-types', 'library', '--library-patch-level', 'major',
    '--advisories', join(repoRoot, 'fixtures/osv/NuGet'), '--nuget-source', flat.url, '--cache-dir', join(work, 'cache'),
  ], { cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '' } });
  assert.match(stdout, /^Newtonsoft\.Json \(nuget, app\) 12\.0\.1 -> 13\.0\.1 {2}\(GHSA-5crp-9r3c-p9vr\)$/m);
  assert.doesNotMatch(stdout, /^failed: /m);
  assert.match(stdout, /patched .* -> .*:v1-patched \(sha256:[0-9a-f]{64}\)/);
  // The plan asked the mirror which versions exist; the executor fetched the hash, then the package.
  assert.deepEqual(flat.requests.filter((r) => !r.endsWith('index.json')), [
    '/v3-flatcontainer/newtonsoft.json/13.0.1/newtonsoft.json.13.0.1.nupkg.sha512', '/v3-flatcontainer/newtonsoft.json/13.0.1/newtonsoft.json.13.0.1.nupkg',
  ]);

  // Checked with other tools: skopeo for the manifest, tar for the layer, umoci for the root, unzip for the package.
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}-patched`])).stdout) as { layers: { digest: string }[] };
  assert.equal(manifest.layers.length, 2, 'exactly one layer added');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest, 'original layer unchanged');
  const layout = join(work, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${image}-patched`, `oci:${layout}:patched`]);
  const added = (await run('tar', ['-tzf', join(layout, 'blobs/sha256', manifest.layers[1]!.digest.slice('sha256:'.length))])).stdout.trim().split('\n').filter((n) => !n.endsWith('/'));
  assert.deepEqual(added.sort(), ['app/Newtonsoft.Json.dll', 'app/demo.deps.json']);
  const bundle = join(work, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:patched`, bundle]);
  const root = join(bundle, 'rootfs');
  patchedApp = join(root, 'app');

  // No file added, none removed; only the DLL and deps.json changed.
  assert.deepEqual(await files(patchedApp), await files(join(original, 'app')));
  const changed: string[] = [];
  for (const f of await files(patchedApp)) if (sha256(await readFile(join(patchedApp, f))) !== sha256(await readFile(join(original, 'app', f)))) changed.push(f);
  assert.deepEqual(changed, ['Newtonsoft.Json.dll', 'demo.deps.json']);
  assert.equal((await stat(join(patchedApp, 'Newtonsoft.Json.dll'))).mode & 0o777, (await stat(join(original, 'app/Newtonsoft.Json.dll'))).mode & 0o777);

  // The DLL is the package's lib/netstandard2.0 one, byte for byte (unzip reads the .nupkg).
  const fromPackage = (await run('sh', ['-c', `unzip -p '${nupkg.path}' lib/netstandard2.0/Newtonsoft.Json.dll | sha256sum`])).stdout.split(' ')[0];
  assert.equal(sha256(await readFile(join(patchedApp, 'Newtonsoft.Json.dll'))), fromPackage);

  // deps.json: still JSON, the package renamed in place, its hash, paths and asset versions those of 13.0.1.
  const deps = JSON.parse(await readFile(join(patchedApp, 'demo.deps.json'), 'utf8'));
  const target = deps.targets['.NETCoreApp,Version=v6.0'];
  assert.deepEqual(Object.keys(target), ['demo/1.0.0', 'Newtonsoft.Json/13.0.1']);
  assert.deepEqual(target['demo/1.0.0'].dependencies, { 'Newtonsoft.Json': '13.0.1' });
  assert.deepEqual(target['Newtonsoft.Json/13.0.1'], { runtime: { 'lib/netstandard2.0/Newtonsoft.Json.dll': { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' } } });
  const sha512 = createHash('sha512').update(await readFile(nupkg.path)).digest('base64');
  assert.deepEqual(deps.libraries['Newtonsoft.Json/13.0.1'], { type: 'package', serviceable: true, sha512: `sha512-${sha512}`, path: 'newtonsoft.json/13.0.1', hashPath: 'newtonsoft.json.13.0.1.nupkg.sha512' });
  assert.equal(deps.libraries['Newtonsoft.Json/12.0.1'], undefined);

  // And the patched image scans as fixed.
  const scan = await run('node', ['bin/patchd.js', 'scan', '-i', `${image}-patched`, '--advisories', join(repoRoot, 'fixtures/osv/NuGet'), '--format', 'json'], { cwd: repoRoot, env: { ...process.env, PATCHD_ADVISORIES: '' } });
  const scanned = JSON.parse(scan.stdout) as { results: { findings: { id: string }[] }[] };
  assert.deepEqual(scanned.results[0]!.findings.map((f) => f.id), []);
});

test('the BuildKit step\'s program, run by plain node on the original app, writes the same bytes as the in-process path', { timeout: 5 * 60_000 }, async () => {
  assert.ok(patchedApp, 'needs the patched image of the test before');
  const program = join(work, 'program');
  await mkdir(program);
  for (const [name, data] of dotnetContainerProgram()) await writeFile(join(program, name), data);
  const root = join(work, 'target');
  await cp(original, root, { recursive: true });
  const downloads = join(work, 'downloads');
  await mkdir(downloads);
  await cp(nupkg.path, join(downloads, 'newtonsoft.json.13.0.1.nupkg'));
  await writeFile(join(downloads, 'newtonsoft.json.13.0.1.nupkg.sha512'), nupkg.sha512);
  const { stdout } = await run('node', [join(program, dotnetProgramEntry), root, 'app/demo.deps.json', downloads, 'Newtonsoft.Json', '12.0.1', '13.0.1', '13.0.1']);
  assert.deepEqual(JSON.parse(stdout), { applied: [{ name: 'Newtonsoft.Json', from: '12.0.1', to: '13.0.1', replaced: ['app/Newtonsoft.Json.dll'] }], failed: [] });
  for (const f of ['Newtonsoft.Json.dll', 'demo.deps.json']) assert.equal(sha256(await readFile(join(root, 'app', f))), sha256(await readFile(join(patchedApp, f))), f);
  assert.deepEqual(await files(join(root, 'app')), await files(patchedApp));

  // A download whose hash is not the published one is refused, and nothing is touched.
  const again = join(work, 'target2');
  await cp(original, again, { recursive: true });
  await writeFile(join(downloads, 'newtonsoft.json.13.0.1.nupkg.sha512'), Buffer.alloc(64).toString('base64'));
  const refused = await run('node', [join(program, dotnetProgramEntry), again, 'app/demo.deps.json', downloads, 'Newtonsoft.Json', '12.0.1', '13.0.1', '13.0.1'], { allowFailure: true });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /NUPKG_HASH_MISMATCH/);
  assert.equal(sha256(await readFile(join(again, 'app/demo.deps.json'))), sha256(await readFile(join(original, 'app/demo.deps.json'))));
});

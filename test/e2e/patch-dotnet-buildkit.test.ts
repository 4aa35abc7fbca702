import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, MockAgent } from 'undici';
import { BuildkitClient } from '../../src/executors/buildkit/client.js';
import { buildPatchLayer } from '../../src/executors/buildkit/executor.js';
import { dotnetExecutor } from '../../src/executors/dotnet/executor.js';
import type { LibraryInstallContext } from '../../src/executors/library/types.js';
import { ImageFilesystem, forEachEntry } from '../../src/image/filesystem.js';
import { createLayerBuilder } from '../../src/image/layer-builder.js';
import { openLayerTar, type Layer } from '../../src/image/layer.js';
import { silentLogger } from '../../src/lib/log.js';
import { MediaType } from '../../src/oci/media-types.js';
import { defaultLibraryIndexUrls } from '../../src/plan/library-index.js';
import type { PlannedLibrary } from '../../src/plan/types.js';
import { scanLayers } from '../../src/scan/scan.js';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { demoApp, newtonsoft13Nupkg, startFlatContainer, type FlatContainer } from '../harness/dotnet-fixtures.js';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { layerFromTarFile } from '../harness/layers.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run } from '../harness/tools.js';

// The .NET BuildKit step on a real buildkitd. patchd's own requests to the
// NuGet source fail here (an undici MockAgent that refuses to connect: the
// source is out of patchd's reach), so the executor defers the app to
// BuildKit; the step runs in a STAND-IN tooling image (sh, curl and node from
// this machine: no .NET SDK exists here, see test/fixtures/build-dotnet-standin-tooling.sh),
// fetches from the loopback flat container, and patchd's program rewrites
// the app under /target. Its diff must hold the same bytes the in-process
// path writes. Not run: a real .NET SDK image, `dotnet nuget verify`.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let flat: FlatContainer;
let work: string;
let app: { ref: string; layer: Layer };
let tooling: string;
const dispatcher = new Agent();

before(async () => {
  const build = await run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot, allowFailure: true });
  if (!existsSync(join(repoRoot, 'dist/executors/dotnet/container-main.js'))) throw new Error(`tsc did not build dist/: ${build.stdout}${build.stderr}`);
  work = await mkdtemp(join(tmpdir(), 'patchd-dotnet-buildkit-'));
  [registry, buildkitd] = await Promise.all([startRegistry(), startBuildkitd()]);
  await demoApp(join(work, 'original'));
  const appTar = join(work, 'app.tar');
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', join(work, 'original'), '-cf', appTar, '.']);
  const pushed = await pushRootfsImage({ tarPath: appTar, registryHost: registry.host, repository: 'fixtures/dotnet-app', tag: 'v1' });
  app = { ref: `${registry.host}/fixtures/dotnet-app@${pushed.digest}`, layer: layerFromTarFile(appTar) };
  const toolingTar = (await run('bash', [join(repoRoot, 'test/fixtures/build-dotnet-standin-tooling.sh')])).stdout.trim().split('\n').at(-1)!;
  await pushRootfsImage({ tarPath: toolingTar, registryHost: registry.host, repository: 'tooling/dotnet-standin', tag: 'v1' });
  tooling = `${registry.host}/tooling/dotnet-standin:v1`;
  const nupkg = await newtonsoft13Nupkg(work);
  flat = await startFlatContainer([{ id: 'Newtonsoft.Json', version: '13.0.1', file: nupkg.path }]);
});

after(async () => {
  await flat?.stop();
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  await dispatcher.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const planned: PlannedLibrary = { ecosystem: 'nuget', name: 'Newtonsoft.Json', from: '12.0.1', to: '13.0.1', path: 'app/demo.deps.json', location: 'app', reasons: ['GHSA-5crp-9r3c-p9vr'], executor: 'buildkit' };

async function context(through: LibraryInstallContext['dispatcher']): Promise<LibraryInstallContext> {
  const { fs, inventory } = await scanLayers([app.layer], { tmpDir: work });
  return {
    base: fs, inventory, builder: createLayerBuilder({ tmpDir: work }), platform: { os: 'linux', architecture: 'amd64' }, dispatcher: through, tmpDir: work, logger: silentLogger(),
    indexes: { pypi: { url: defaultLibraryIndexUrls.pypi }, npm: { url: defaultLibraryIndexUrls.npm }, goProxy: { url: defaultLibraryIndexUrls.goProxy }, nuget: { url: flat.url } },
    toolingImages: { dotnet: tooling } as LibraryInstallContext['toolingImages'],
  };
}

async function contents(layer: Layer): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await forEachEntry(await openLayerTar(layer), async (header, body) => {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    if (header.type === 'file') out.set(header.name.replace(/^\.\//, ''), Buffer.concat(chunks).toString('base64'));
    else if (header.type !== 'directory') out.set(header.name, header.type ?? '');
  });
  return out;
}

test('NuGet out of patchd\'s reach: the app goes to BuildKit, whose diff holds the bytes the in-process path writes', { timeout: 20 * 60_000 }, async () => {
  const offline = new MockAgent();
  offline.disableNetConnect();
  const ctx = await context(offline);
  const result = await dotnetExecutor.installInProcess(ctx, [planned]);
  assert.deepEqual([result.applied, result.failed], [[], []]);
  assert.equal(result.deferred.length, 1);
  assert.match(result.deferred[0]!.why, /\.NET SDK tooling image/);
  await offline.close();

  const client = new BuildkitClient({ address: buildkitd.address });
  const logs: string[] = [];
  let layer;
  try {
    layer = await buildPatchLayer(
      { client, baseRef: app.ref, platform: { architecture: 'amd64', os: 'linux' }, workDir: work, logger: silentLogger(), onLog: (l) => logs.push(l) },
      (base) => ({ lower: base, upper: dotnetExecutor.buildkitSteps!(base, [planned], ctx) }),
      MediaType.ociLayerGzip,
    );
  } finally {
    client.close();
  }
  const fromBuildkit = await contents(layer);
  // Nothing of the tooling, the downloads or the program leaks into the diff.
  assert.deepEqual([...fromBuildkit.keys()].filter((k) => !k.endsWith('/')).sort(), ['app/Newtonsoft.Json.dll', 'app/demo.deps.json'], logs.join('\n'));

  const inProcessCtx = await context(dispatcher);
  const direct = await dotnetExecutor.installInProcess(inProcessCtx, [planned]);
  assert.deepEqual(direct.applied.map((l) => l.name), ['Newtonsoft.Json']);
  const fromProcess = await contents(await inProcessCtx.builder.write());
  for (const path of ['app/Newtonsoft.Json.dll', 'app/demo.deps.json']) assert.equal(fromBuildkit.get(path), fromProcess.get(path), `${path}: BuildKit and in-process differ`);

  const patched = await ImageFilesystem.load([app.layer, layer]);
  const deps = JSON.parse((await patched.readFile('app/demo.deps.json'))!.toString('utf8'));
  assert.deepEqual(Object.keys(deps.libraries), ['demo/1.0.0', 'Newtonsoft.Json/13.0.1']);
  assert.ok(flat.requests.includes('/v3-flatcontainer/newtonsoft.json/13.0.1/newtonsoft.json.13.0.1.nupkg.sha512'), 'the step checked the published hash');
});

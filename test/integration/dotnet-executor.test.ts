import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from 'undici';
import { dotnetExecutor } from '../../src/executors/dotnet/executor.js';
import type { DotnetError } from '../../src/executors/dotnet/errors.js';
import type { LibraryInstallContext } from '../../src/executors/library/types.js';
import { ImageFilesystem, forEachEntry } from '../../src/image/filesystem.js';
import { createLayerBuilder } from '../../src/image/layer-builder.js';
import { openLayerTar, type Layer } from '../../src/image/layer.js';
import { silentLogger } from '../../src/lib/log.js';
import { defaultLibraryIndexUrls, type PackageIndexes } from '../../src/plan/library-index.js';
import type { PlannedLibrary } from '../../src/plan/types.js';
import { scanLayers } from '../../src/scan/scan.js';
import { demoApp, newtonsoft13Nupkg, startFlatContainer, type FlatContainer } from '../harness/dotnet-fixtures.js';
import { entriesFromDir, layerFromEntries } from '../harness/layers.js';

// The in-process .NET executor against a loopback NuGet flat container: the
// .nupkg downloaded and checked against its .nupkg.sha512, the app's DLL
// replaced and its deps.json rewritten in the patch layer, and every way the
// source can fail reported with its own code and kind.

let work: string;
let appLayer: Layer;
let nupkg: { path: string; sha512: string };
const dispatcher = new Agent();
const servers: FlatContainer[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'patchd-dotnet-exec-'));
  await demoApp(join(work, 'root'));
  // A second app: the seeds patch only the first.
  await demoApp(join(work, 'root/srv'));
  appLayer = await layerFromEntries(await entriesFromDir(join(work, 'root')), 'dotnet-app');
  nupkg = await newtonsoft13Nupkg(work);
});

after(async () => {
  for (const s of servers) await s.stop();
  await dispatcher.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function flatContainer(sha512?: string | false): Promise<FlatContainer> {
  const server = await startFlatContainer([{ id: 'Newtonsoft.Json', version: '13.0.1', file: nupkg.path, ...(sha512 === undefined ? {} : { sha512 }) }], { 'newtonsoft.json': ['12.0.1'] });
  servers.push(server);
  return server;
}

const planned = (path = 'app/demo.deps.json'): PlannedLibrary => ({
  ecosystem: 'nuget', name: 'Newtonsoft.Json', from: '12.0.1', to: '13.0.1', path, location: path.slice(0, path.lastIndexOf('/')), reasons: ['GHSA-5crp-9r3c-p9vr'], executor: 'buildkit',
});

async function context(url: string, extra: Partial<LibraryInstallContext> = {}): Promise<LibraryInstallContext> {
  const { fs, inventory } = await scanLayers([appLayer], { tmpDir: work });
  const indexes: PackageIndexes = { pypi: { url: defaultLibraryIndexUrls.pypi }, npm: { url: defaultLibraryIndexUrls.npm }, goProxy: { url: defaultLibraryIndexUrls.goProxy }, nuget: { url } };
  return {
    base: fs, inventory, builder: createLayerBuilder({ tmpDir: work }), platform: { os: 'linux', architecture: 'amd64' },
    indexes, dispatcher, tmpDir: work, logger: silentLogger(), ...extra,
  };
}

async function layerPaths(layer: Layer): Promise<string[]> {
  const paths: string[] = [];
  await forEachEntry(await openLayerTar(layer), async (header, body) => { paths.push(header.name); body.resume(); });
  return paths.sort();
}

describe('in-process', () => {
  test('the inventory sees both apps; the plan for the first is applied, the second is refused by the seeds\' rule', async () => {
    const server = await flatContainer();
    const ctx = await context(server.url);
    assert.deepEqual(ctx.inventory.packages.filter((p) => p.ecosystem === 'nuget').map((p) => `${p.path} ${p.name} ${p.version}`).sort(), [
      'app/demo.deps.json Newtonsoft.Json 12.0.1', 'srv/app/demo.deps.json Newtonsoft.Json 12.0.1',
    ]);
    // A record under /usr/share (SDK tooling) is never an app, whatever a report says.
    const result = await dotnetExecutor.installInProcess(ctx, [planned('srv/app/demo.deps.json'), planned(), planned('usr/share/dotnet/sdk/8.0.100/dotnet.deps.json')]);
    assert.deepEqual(result.applied.map((l) => l.path), ['app/demo.deps.json']);
    assert.deepEqual(result.deferred, []);
    // The seeds' rules leave the second app and the SDK's own record alone: reported as not patched, never failing the job.
    assert.deepEqual(result.failed, []);
    assert.deepEqual((result.skipped ?? []).map((s) => [s.library.path, /first \.NET application|not an application's deps\.json/.test(s.why)]).sort(), [
      ['srv/app/demo.deps.json', true], ['usr/share/dotnet/sdk/8.0.100/dotnet.deps.json', true],
    ]);
    assert.equal(result.bytesDownloaded, (await readFile(nupkg.path)).length);
    assert.deepEqual(server.requests, ['/v3-flatcontainer/newtonsoft.json/13.0.1/newtonsoft.json.13.0.1.nupkg.sha512', '/v3-flatcontainer/newtonsoft.json/13.0.1/newtonsoft.json.13.0.1.nupkg']);

    const layer = await ctx.builder.write();
    assert.deepEqual(await layerPaths(layer), ['app/Newtonsoft.Json.dll', 'app/demo.deps.json']);
    const after = await ImageFilesystem.load([appLayer, layer]);
    const dll = (await after.readFile('app/Newtonsoft.Json.dll'))!;
    assert.ok(dll.includes(Buffer.from('lib/netstandard2.0\0')), 'the netstandard2.0 DLL of the package');
    const deps = JSON.parse((await after.readFile('app/demo.deps.json'))!.toString('utf8'));
    assert.deepEqual(deps.libraries['Newtonsoft.Json/13.0.1'], { type: 'package', serviceable: true, sha512: `sha512-${nupkg.sha512}`, path: 'newtonsoft.json/13.0.1', hashPath: 'newtonsoft.json.13.0.1.nupkg.sha512' });
    assert.deepEqual(deps.targets['.NETCoreApp,Version=v6.0']['Newtonsoft.Json/13.0.1'].runtime['lib/netstandard2.0/Newtonsoft.Json.dll'], { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' });
    // The second app is as it was.
    assert.deepEqual(await after.readFile('srv/app/demo.deps.json'), await ctx.base.readFile('srv/app/demo.deps.json'));
    assert.equal(after.stat('app/Newtonsoft.Json.dll')!.mode, ctx.base.stat('app/Newtonsoft.Json.dll')!.mode);
  });

  test('a .nupkg whose bytes are not the ones .nupkg.sha512 names is refused; nothing is written', async () => {
    const server = await flatContainer(Buffer.alloc(64, 7).toString('base64'));
    const ctx = await context(server.url);
    const result = await dotnetExecutor.installInProcess(ctx, [planned()]);
    assert.deepEqual(result.failed.map((f) => [(f.error as DotnetError).code, (f.error as DotnetError).kind]), [['NUPKG_HASH_MISMATCH', 'upstream']]);
    assert.deepEqual([result.applied, ctx.builder.paths()], [[], []]);
  });

  test('a source that publishes no hash: NUPKG_UNVERIFIABLE without an SDK image, deferred to BuildKit with one', async () => {
    const server = await flatContainer(false);
    const without = await dotnetExecutor.installInProcess(await context(server.url), [planned()]);
    assert.deepEqual(without.failed.map((f) => [(f.error as DotnetError).code, (f.error as DotnetError).kind]), [['NUPKG_UNVERIFIABLE', 'unsupported']]);
    const ctx = await context(server.url, { toolingImages: { dotnet: 'registry.local/dotnet/sdk:8.0' } as LibraryInstallContext['toolingImages'] });
    const withSdk = await dotnetExecutor.installInProcess(ctx, [planned()]);
    assert.deepEqual([withSdk.applied, withSdk.failed], [[], []]);
    assert.deepEqual(withSdk.deferred.map((d) => [d.library.name, /publishes no newtonsoft\.json\.13\.0\.1\.nupkg\.sha512.*\.NET SDK tooling image/.test(d.why)]), [['Newtonsoft.Json', true]]);
    assert.deepEqual(ctx.builder.paths(), []);
  });

  test('an unreachable or failing source is NUGET_UNAVAILABLE (retried by the service); a missing package is final', async () => {
    const server = await flatContainer();
    server.failWith = 503;
    const busy = await dotnetExecutor.installInProcess(await context(server.url), [planned()]);
    assert.deepEqual(busy.failed.map((f) => [(f.error as DotnetError).code, (f.error as DotnetError).kind]), [['NUGET_UNAVAILABLE', 'unavailable']]);
    server.failWith = undefined;
    await server.stop();
    const down = await dotnetExecutor.installInProcess(await context(server.url), [planned()]);
    assert.deepEqual(down.failed.map((f) => (f.error as DotnetError).code), ['NUGET_UNAVAILABLE']);
    const other = await flatContainer();
    const gone = await dotnetExecutor.installInProcess(await context(other.url), [{ ...planned(), to: '13.0.2' }]);
    assert.deepEqual(gone.failed.map((f) => [(f.error as DotnetError).code, (f.error as DotnetError).kind]), [['NUPKG_NOT_FOUND', 'upstream']]);
  });

  test('credentials go to the source, and never into an error', async () => {
    const server = await flatContainer();
    server.failWith = 401;
    const ctx = await context(server.url);
    const withCreds = { ...ctx, indexes: { ...ctx.indexes, nuget: { url: server.url, credentials: { username: 'ci', password: 's3cret-pw' } } } };
    const result = await dotnetExecutor.installInProcess(withCreds, [planned()]);
    const error = result.failed[0]!.error as DotnetError;
    assert.equal(error.code, 'NUPKG_NOT_FOUND');
    assert.deepEqual(server.authorizations, [`Basic ${Buffer.from('ci:s3cret-pw').toString('base64')}`]);
    assert.doesNotMatch(`${error.message} ${String(error.cause ?? '')}`, /s3cret|ci:/);
  });
});

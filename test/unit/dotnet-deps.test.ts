import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BuildkitError } from '../../src/executors/buildkit/errors.js';
import { image, marshal, diff } from '../../src/executors/buildkit/llb.js';
import { dotnetSdkUpdate, type DotnetSdkUpdate } from '../../src/executors/buildkit/strategies/dotnet.js';
import { readAssemblyVersions } from '../../src/executors/dotnet/assembly-version.js';
import { packagePath, selectAssets } from '../../src/executors/dotnet/assets.js';
import { readDepsJson, rewriteDepsJson } from '../../src/executors/dotnet/deps-json.js';
import { DotnetError } from '../../src/executors/dotnet/errors.js';
import { nearestFramework, parseFramework, ridFallbacks, type Framework } from '../../src/executors/dotnet/frameworks.js';
import { openNupkg, type NupkgArchive } from '../../src/executors/dotnet/nupkg.js';
import { flatContainerPath, normalizeNuGetVersion, parseNuspec, satisfiesRange } from '../../src/executors/dotnet/nuspec.js';
import { updateDotnetApp, type DotnetPackageUpdate } from '../../src/executors/dotnet/update.js';
import { syntheticAssembly } from '../harness/dotnet-assembly.js';
import { buildNupkg, newtonsoft13Frameworks, newtonsoft13Nupkg, newtonsoftDll } from '../harness/dotnet-fixtures.js';

// The pure half of .NET patching: which DLLs a new version brings for the
// app's framework, which of the app's files they replace, and the deps.json
// rewrite, all fed by a package's file names, nuspec and DLL bytes.

const fixtures = new URL('../../fixtures/', import.meta.url).pathname;
const demoDeps = () => readFile(join(fixtures, 'dotnet/app/demo.deps.json'), 'utf8');
const nuspec13 = () => readFile(join(fixtures, 'dotnet/newtonsoft.json.13.0.1/Newtonsoft.Json.nuspec'), 'utf8');
const fw = (name: string): Framework => parseFramework(name)!;

let work: string;
before(async () => { work = await mkdtemp(join(tmpdir(), 'patchd-dotnet-unit-')); });
after(async () => { if (work) await rm(work, { recursive: true, force: true }); });

/** A package held in memory: names as a zip would list them. */
function memoryNupkg(files: Record<string, Buffer | string>): NupkgArchive {
  return {
    names: Object.keys(files),
    async read(name) {
      const f = files[name];
      if (f === undefined) throw new DotnetError('NUPKG_INVALID', `no ${name}`);
      return Buffer.from(f);
    },
  };
}

async function newtonsoft13Memory(overrides: Record<string, Buffer | string | undefined> = {}): Promise<NupkgArchive> {
  const files: Record<string, Buffer | string> = { 'Newtonsoft.Json.nuspec': await nuspec13(), '[Content_Types].xml': '<Types/>' };
  for (const tfm of newtonsoft13Frameworks) files[`lib/${tfm}/Newtonsoft.Json.dll`] = newtonsoftDll('13.0.0.0', '13.0.1.25517', `lib/${tfm}`);
  for (const [k, v] of Object.entries(overrides)) { if (v === undefined) delete files[k]; else files[k] = v; }
  return memoryNupkg(files);
}

const appWith = (...files: string[]) => ({ isFile: async (p: string) => files.includes(p) });

describe('target frameworks', () => {
  test('folder, nuspec and deps.json names', () => {
    assert.deepEqual(parseFramework('netstandard2.0'), { family: '.NETStandard', version: [2, 0] });
    assert.deepEqual(parseFramework('net6.0'), { family: '.NETCoreApp', version: [6, 0] });
    assert.deepEqual(parseFramework('net8.0-windows10.0.19041'), { family: '.NETCoreApp', version: [8, 0], platform: 'windows' });
    assert.deepEqual(parseFramework('netcoreapp3.1'), { family: '.NETCoreApp', version: [3, 1] });
    assert.deepEqual(parseFramework('net472'), { family: '.NETFramework', version: [4, 7, 2] });
    assert.deepEqual(parseFramework('net20'), { family: '.NETFramework', version: [2, 0] });
    assert.deepEqual(parseFramework('.NETStandard1.3'), { family: '.NETStandard', version: [1, 3] });
    assert.deepEqual(parseFramework('.NETFramework4.5'), { family: '.NETFramework', version: [4, 5] });
    assert.deepEqual(parseFramework('.NETCoreApp,Version=v8.0'), { family: '.NETCoreApp', version: [8, 0] });
    for (const other of ['portable-net45+win8+wpa81', 'uap10.0', 'monoandroid10', 'net', 'xamarinios10', 'net4.5']) assert.equal(parseFramework(other), undefined, other);
  });

  test('nearest framework for a .NET app, as NuGet picks it', () => {
    const pick = (app: string, folders: string[]) => nearestFramework(fw(app), folders, parseFramework);
    assert.deepEqual(pick('net6.0', [...newtonsoft13Frameworks]), { pick: 'netstandard2.0', fallback: false });
    assert.deepEqual(pick('net8.0', ['net6.0', 'net8.0-windows', 'netstandard2.1', 'net9.0']), { pick: 'net6.0', fallback: false });
    assert.deepEqual(pick('netcoreapp3.1', ['netstandard2.1', 'net5.0', 'netstandard2.0']), { pick: 'netstandard2.1', fallback: false });
    assert.deepEqual(pick('netcoreapp2.1', ['netstandard2.1', 'netstandard2.0']), { pick: 'netstandard2.0', fallback: false });
    // AssetTargetFallback: .NET Framework assets only when nothing else fits, first ≤ net461.
    assert.deepEqual(pick('net6.0', ['net45', 'net472']), { pick: 'net45', fallback: true });
    assert.deepEqual(pick('net6.0', ['net472', 'net48']), { pick: 'net472', fallback: true });
    assert.equal(pick('net6.0', ['net8.0', 'net6.0-android']), undefined);
  });

  test('the portable RID graph', () => {
    assert.deepEqual(ridFallbacks('linux-x64'), ['linux-x64', 'linux', 'unix', 'any']);
    assert.deepEqual(ridFallbacks('linux-musl-arm64'), ['linux-musl-arm64', 'linux-musl', 'linux-arm64', 'linux', 'unix', 'any']);
    assert.deepEqual(ridFallbacks('win-x86'), ['win-x86', 'win', 'any']);
    assert.equal(ridFallbacks('alpine.3.18-x64'), undefined);
  });
});

describe('asset choice from a package\'s file names', () => {
  test('Newtonsoft.Json 13.0.1 in a net6.0 app: lib/netstandard2.0, the DLL only (docs are not run-time assets)', () => {
    const names = newtonsoft13Frameworks.flatMap((t) => [`lib/${t}/Newtonsoft.Json.dll`, `lib/${t}/Newtonsoft.Json.xml`]);
    const s = selectAssets(['Newtonsoft.Json.nuspec', ...names], { framework: fw('net6.0') });
    assert.equal(s.folder, 'lib/netstandard2.0');
    assert.deepEqual(s.runtime, [{ path: 'lib/netstandard2.0/Newtonsoft.Json.dll', entry: 'lib/netstandard2.0/Newtonsoft.Json.dll', appPath: 'Newtonsoft.Json.dll' }]);
    assert.deepEqual([s.resources, s.unsupported, s.incompatible], [[], [], false]);
  });

  test('a RID-specific app takes runtimes/<rid>/lib over lib/, most specific RID first; native assets are flagged', () => {
    const names = ['lib/net6.0/A.dll', 'runtimes/unix/lib/net6.0/A.dll', 'runtimes/win/lib/net6.0/A.dll', 'runtimes/linux-x64/native/libA.so'];
    const s = selectAssets(names, { framework: fw('net8.0'), rid: 'linux-x64' });
    assert.equal(s.folder, 'runtimes/unix/lib/net6.0');
    assert.deepEqual(s.runtime.map((a) => [a.path, a.appPath]), [['runtimes/unix/lib/net6.0/A.dll', 'A.dll']]);
    assert.deepEqual(s.unsupported, ['runtimes/linux-x64/native/libA.so']);
    // The same package in a portable app: every runtimes/ asset would be a runtimeTargets entry.
    const portable = selectAssets(names, { framework: fw('net8.0') });
    assert.equal(portable.folder, 'lib/net6.0');
    assert.equal(portable.unsupported.length, 3);
  });

  test('satellites, _._ placeholders, packages with nothing for the framework', () => {
    const s = selectAssets(['lib/netstandard2.0/B.dll', 'lib/netstandard2.0/de/B.resources.dll', 'lib/netstandard2.0/zh-Hans/B.resources.dll', 'lib/netstandard2.0/x/y/B.resources.dll'], { framework: fw('net6.0') });
    assert.deepEqual(s.resources.map((r) => [r.appPath, r.locale]), [['de/B.resources.dll', 'de'], ['zh-Hans/B.resources.dll', 'zh-Hans']]);
    const empty = selectAssets(['lib/net6.0/_._', 'lib/net45/C.dll'], { framework: fw('net8.0') });
    assert.deepEqual([empty.folder, empty.runtime, empty.incompatible], ['lib/net6.0', [], false]);
    const none = selectAssets(['lib/net8.0-windows7.0/D.dll', 'lib/monoandroid10/D.dll'], { framework: fw('net8.0') });
    assert.deepEqual([none.folder, none.incompatible], [undefined, true]);
    const metapackage = selectAssets(['Meta.nuspec'], { framework: fw('net8.0') });
    assert.deepEqual([metapackage.folder, metapackage.runtime, metapackage.incompatible], [undefined, [], false]);
  });

  test('zip names: percent-encoding decoded, names that could escape ignored', () => {
    assert.equal(packagePath('lib/net6.0/My%20Lib.dll'), 'lib/net6.0/My Lib.dll');
    assert.equal(packagePath('lib\\net45\\A.dll'), 'lib/net45/A.dll');
    for (const bad of ['../lib/net6.0/A.dll', '/lib/net6.0/A.dll', 'lib/net6.0/../../A.dll', 'lib//A.dll', 'lib/net6.0/%2E%2E/A.dll', 'lib/%zz.dll']) assert.equal(packagePath(bad), undefined, bad);
    const s = selectAssets(['lib/net6.0/Good%20One.dll', 'lib/net6.0/..%2F..%2Fevil.dll'], { framework: fw('net6.0') });
    assert.deepEqual(s.runtime.map((a) => [a.entry, a.appPath]), [['lib/net6.0/Good%20One.dll', 'Good One.dll']]);
  });
});

describe('nuspec', () => {
  test('id, version and dependency groups of the Newtonsoft.Json 13.0.1 nuspec', async () => {
    const n = parseNuspec(await nuspec13());
    assert.equal(n.id, 'Newtonsoft.Json');
    assert.equal(n.version, '13.0.1');
    assert.deepEqual(n.dependencyGroups.map((g) => [g.targetFramework, g.dependencies.length]), [
      ['.NETFramework2.0', 0], ['.NETFramework3.5', 0], ['.NETFramework4.0', 0], ['.NETFramework4.5', 0], ['.NETStandard1.0', 4], ['.NETStandard1.3', 6], ['.NETStandard2.0', 0],
    ]);
    assert.deepEqual(n.dependencyGroups[4]!.dependencies[0], { id: 'Microsoft.CSharp', range: '4.3.0' });
  });

  test('ungrouped dependencies, entities, comments; a nuspec without id is refused', () => {
    const n = parseNuspec('<?xml version="1.0"?><package><metadata><id>A&amp;B</id><version>1.0.0-beta</version><!-- <dependency id="Hidden" version="1" /> --><dependencies><dependency id="X" version="[1.0, 2.0)"/><dependency id=\'Y\' version="1.2" exclude="All" /></dependencies></metadata></package>');
    assert.deepEqual(n, { id: 'A&B', version: '1.0.0-beta', dependencyGroups: [{ targetFramework: '', dependencies: [{ id: 'X', range: '[1.0, 2.0)' }] }] });
    assert.throws(() => parseNuspec('<package><metadata><version>1.0</version></metadata></package>'), (e: DotnetError) => e.code === 'NUPKG_INVALID');
  });

  test('version ranges and normalized versions', () => {
    const cases: [string, string, boolean][] = [
      ['4.3.0', '4.3.0', true], ['4.2.9', '4.3.0', false], ['5.0.0', '4.3.0', true],
      ['1.0.0', '[1.0]', true], ['1.0.1', '[1.0]', false],
      ['1.5.0', '[1.0, 2.0)', true], ['2.0.0', '[1.0, 2.0)', false], ['2.0.0', '[1.0, 2.0]', true],
      ['1.0.0', '(1.0,)', false], ['1.0.1', '(1.0,)', true], ['3.0.0', '(, 3.0]', true], ['3.0.1', '(, 3.0]', false],
      ['2.0.0-beta', '[2.0.0, )', false],
    ];
    for (const [v, r, want] of cases) assert.equal(satisfiesRange(v, r), want, `${v} in ${r}`);
    assert.throws(() => satisfiesRange('1.0.0', '[1.0'), (e: DotnetError) => e.code === 'NUPKG_INVALID');
    assert.equal(normalizeNuGetVersion('1.0'), '1.0.0');
    assert.equal(normalizeNuGetVersion('1.0.0.0'), '1.0.0');
    assert.equal(normalizeNuGetVersion('4.7.1.3+build'), '4.7.1.3');
    assert.equal(normalizeNuGetVersion('2.0.0-Preview.1'), '2.0.0-Preview.1');
    assert.deepEqual(flatContainerPath('Newtonsoft.Json', '13.0.1'), { id: 'newtonsoft.json', version: '13.0.1', stem: 'newtonsoft.json/13.0.1/newtonsoft.json.13.0.1' });
    assert.throws(() => flatContainerPath('../x', '1.0'), (e: DotnetError) => e.code === 'DOTNET_REQUEST_INVALID');
    assert.throws(() => flatContainerPath('x', '1.0/../2'), (e: DotnetError) => e.code === 'DOTNET_REQUEST_INVALID');
  });
});

describe('assembly versions from PE files', () => {
  test('assemblyVersion from the Assembly table, fileVersion from VS_FIXEDFILEINFO', () => {
    assert.deepEqual(readAssemblyVersions(newtonsoftDll('13.0.0.0', '13.0.1.25517', 'x')), { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' });
    // TypeRef past 2^14 rows: coded indexes into it are 4 bytes wide, and the Assembly row moves.
    assert.deepEqual(readAssemblyVersions(syntheticAssembly({ name: 'Big', assemblyVersion: '4.0.5.0', fileVersion: '4.700.20.21406', typeRefs: 20_000, typeDefs: 3 })), { assemblyVersion: '4.0.5.0', fileVersion: '4.700.20.21406' });
    assert.deepEqual(readAssemblyVersions(syntheticAssembly({ name: 'NoResource', assemblyVersion: '1.2.3.4' })), { assemblyVersion: '1.2.3.4' });
  });

  test('what is not a managed assembly reads as undefined, never throws', () => {
    const good = newtonsoftDll('13.0.0.0', '13.0.1.25517', 'x');
    assert.equal(readAssemblyVersions(Buffer.from('placeholder DLL: not a PE file\n')), undefined);
    assert.equal(readAssemblyVersions(Buffer.alloc(0)), undefined);
    for (let cut = 0; cut < good.length; cut += 37) assert.doesNotThrow(() => readAssemblyVersions(good.subarray(0, cut)));
    // Seeded byte flips anywhere in the file.
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      const copy = Buffer.from(good);
      for (let j = 0; j < 3; j++) { seed = (seed * 1103515245 + 12345) & 0x7fffffff; copy[seed % copy.length] = seed & 0xff; }
      assert.doesNotThrow(() => readAssemblyVersions(copy));
    }
  });
});

describe('deps.json rewrite', () => {
  test('the fixture is written as the SDK writes it: a rewrite with no changes gives the same bytes', async () => {
    const text = await demoDeps();
    assert.equal(rewriteDepsJson(text, []), text);
    assert.equal(rewriteDepsJson(`\uFEFF${text}`, []), `\uFEFF${text}`);
  });

  test('Newtonsoft.Json 12.0.1 -> 13.0.1: keys in place, sha512/path/hashPath, asset versions, references', async () => {
    const text = await demoDeps();
    const out = rewriteDepsJson(text, [{
      key: 'Newtonsoft.Json/12.0.1', to: '13.0.1', sha512: 'ppPFpBcvxdsfUonNcvITKqLl3bqxWbDCZIzDWHzjpdAHRFfZe0Dw9HmA0+za13IdyrgJwpkDTDA9fHaxOrt20A==',
      entry: { runtime: { 'lib/netstandard2.0/Newtonsoft.Json.dll': { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' } } },
    }]);
    const json = JSON.parse(out);
    const target = json.targets['.NETCoreApp,Version=v6.0'];
    assert.deepEqual(Object.keys(target), ['demo/1.0.0', 'Newtonsoft.Json/13.0.1']);
    assert.deepEqual(target['demo/1.0.0'].dependencies, { 'Newtonsoft.Json': '13.0.1' });
    assert.deepEqual(target['Newtonsoft.Json/13.0.1'], { runtime: { 'lib/netstandard2.0/Newtonsoft.Json.dll': { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' } } });
    assert.deepEqual(Object.keys(json.libraries), ['demo/1.0.0', 'Newtonsoft.Json/13.0.1']);
    assert.deepEqual(json.libraries['Newtonsoft.Json/13.0.1'], {
      type: 'package', serviceable: true,
      sha512: 'sha512-ppPFpBcvxdsfUonNcvITKqLl3bqxWbDCZIzDWHzjpdAHRFfZe0Dw9HmA0+za13IdyrgJwpkDTDA9fHaxOrt20A==',
      path: 'newtonsoft.json/13.0.1', hashPath: 'newtonsoft.json.13.0.1.nupkg.sha512',
    });
    // Everything else as it was, and the file keeps its shape: the diff is the changed lines only.
    const before = text.split('\n');
    const changed = out.split('\n').filter((line, i) => line !== before[i]);
    assert.deepEqual(changed.map((l) => l.trim()), [
      '"Newtonsoft.Json": "13.0.1"', '"Newtonsoft.Json/13.0.1": {', '"assemblyVersion": "13.0.0.0",', '"fileVersion": "13.0.1.25517"',
      '"Newtonsoft.Json/13.0.1": {', '"sha512": "sha512-ppPFpBcvxdsfUonNcvITKqLl3bqxWbDCZIzDWHzjpdAHRFfZe0Dw9HmA0+za13IdyrgJwpkDTDA9fHaxOrt20A==",',
      '"path": "newtonsoft.json/13.0.1",', '"hashPath": "newtonsoft.json.13.0.1.nupkg.sha512"',
    ]);
  });

  test('keys such as __proto__ stay plain keys; a deps.json the host could not use is refused', () => {
    const text = '{"runtimeTarget":{"name":".NETCoreApp,Version=v8.0"},"targets":{".NETCoreApp,Version=v8.0":{"__proto__":{"x":1}}},"libraries":{}}';
    assert.equal(JSON.parse(rewriteDepsJson(text, [])).targets['.NETCoreApp,Version=v8.0'].__proto__.x, 1);
    const code = (f: () => unknown) => { try { f(); return 'none'; } catch (e) { return (e as DotnetError).code; } };
    assert.equal(code(() => readDepsJson('{', 'a.deps.json')), 'DEPS_JSON_INVALID');
    assert.equal(code(() => readDepsJson('{"targets":{}}', 'a.deps.json')), 'DEPS_JSON_INVALID');
    assert.equal(code(() => readDepsJson('{"runtimeTarget":{"name":"X"},"targets":{"Y":{}},"libraries":{}}', 'a.deps.json')), 'DEPS_JSON_INVALID');
    assert.equal(code(() => readDepsJson('{"runtimeTarget":{"name":".NETFramework,Version=v4.8"},"targets":{".NETFramework,Version=v4.8":{}},"libraries":{}}', 'a.deps.json')), 'DOTNET_UNSUPPORTED');
    const rid = readDepsJson('{"runtimeTarget":{"name":".NETCoreApp,Version=v8.0/linux-x64"},"targets":{".NETCoreApp,Version=v8.0/linux-x64":{}},"libraries":{}}', 'a.deps.json');
    assert.deepEqual([rid.framework, rid.rid], [{ family: '.NETCoreApp', version: [8, 0] }, 'linux-x64']);
  });
});

describe('the app update both executors run', () => {
  const update = async (over: Partial<DotnetPackageUpdate> = {}): Promise<DotnetPackageUpdate> => ({ name: 'Newtonsoft.Json', from: '12.0.1', to: '13.0.1', nupkg: await newtonsoft13Memory(), sha512: 'A'.repeat(86) + '==', ...over });

  test('the netstandard2.0 DLL replaces the app\'s, deps.json names it; nothing else is written', async () => {
    const result = await updateDotnetApp({ depsPath: 'app/demo.deps.json', depsText: await demoDeps(), app: appWith('app/Newtonsoft.Json.dll', 'app/demo.dll'), packages: [await update()] });
    assert.deepEqual(result.failed, []);
    assert.deepEqual(result.files.map((f) => [f.path, f.source]), [['app/Newtonsoft.Json.dll', 'lib/netstandard2.0/Newtonsoft.Json.dll']]);
    assert.ok(result.files[0]!.data.includes(Buffer.from('lib/netstandard2.0\0')));
    assert.deepEqual(result.applied, [{ name: 'Newtonsoft.Json', from: '12.0.1', to: '13.0.1', folder: 'lib/netstandard2.0', replaced: ['app/Newtonsoft.Json.dll'] }]);
    const json = JSON.parse(result.depsJson!.toString('utf8'));
    assert.deepEqual(json.targets['.NETCoreApp,Version=v6.0']['Newtonsoft.Json/13.0.1'].runtime, { 'lib/netstandard2.0/Newtonsoft.Json.dll': { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' } });
    assert.equal(json.libraries['Newtonsoft.Json/13.0.1'].sha512, `sha512-${'A'.repeat(86)}==`);
  });

  test('the self-contained linux-x64 app of the inventory fixture: the same choice, its runtime pack and other packages untouched', async () => {
    const text = await readFile(join(fixtures, 'inventory/dotnet/app/demo.deps.json'), 'utf8');
    const result = await updateDotnetApp({ depsPath: 'app/demo.deps.json', depsText: text, app: appWith('app/Newtonsoft.Json.dll'), packages: [await update()] });
    assert.deepEqual(result.failed, []);
    const json = JSON.parse(result.depsJson!.toString('utf8'));
    const target = json.targets['.NETCoreApp,Version=v8.0/linux-x64'];
    assert.deepEqual(Object.keys(target), ['demo/1.0.0', 'runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.0', 'Newtonsoft.Json/13.0.1', 'Microsoft.Build.Framework/17.3.2', 'System.Text.Encodings.Web/4.7.1']);
    assert.equal(target['demo/1.0.0'].dependencies['Newtonsoft.Json'], '13.0.1');
    assert.deepEqual(json.libraries['System.Text.Encodings.Web/4.7.1'], JSON.parse(text).libraries['System.Text.Encodings.Web/4.7.1']);
  });

  test('replace only DLLs that exist: a version needing a DLL the app lacks is refused whole', async () => {
    const missing = await updateDotnetApp({ depsPath: 'app/demo.deps.json', depsText: await demoDeps(), app: appWith('app/demo.dll'), packages: [await update()] });
    assert.deepEqual([missing.files, missing.depsJson, missing.failed.map((f) => f.error.code)], [[], undefined, ['DOTNET_WOULD_ADD']]);
    const extra = await update({ nupkg: await newtonsoft13Memory({ 'lib/netstandard2.0/Newtonsoft.Json.Extra.dll': newtonsoftDll('13.0.0.0', '13.0.1.25517', 'extra') }) });
    const added = await updateDotnetApp({ depsPath: 'app/demo.deps.json', depsText: await demoDeps(), app: appWith('app/Newtonsoft.Json.dll'), packages: [extra] });
    assert.deepEqual(added.failed.map((f) => [f.error.code, /Newtonsoft\.Json\.Extra\.dll/.test(f.error.message)]), [['DOTNET_WOULD_ADD', true]]);
    assert.deepEqual(added.files, []);
  });

  test('satellite assemblies only for the cultures the app has', async () => {
    const nupkg = await newtonsoft13Memory({
      'lib/netstandard2.0/de/Newtonsoft.Json.resources.dll': 'de satellite', 'lib/netstandard2.0/fr/Newtonsoft.Json.resources.dll': 'fr satellite',
    });
    const result = await updateDotnetApp({ depsPath: 'app/demo.deps.json', depsText: await demoDeps(), app: appWith('app/Newtonsoft.Json.dll', 'app/de/Newtonsoft.Json.resources.dll'), packages: [await update({ nupkg })] });
    assert.deepEqual(result.files.map((f) => f.path), ['app/Newtonsoft.Json.dll', 'app/de/Newtonsoft.Json.resources.dll']);
    const entry = JSON.parse(result.depsJson!.toString('utf8')).targets['.NETCoreApp,Version=v6.0']['Newtonsoft.Json/13.0.1'];
    assert.deepEqual(entry.resources, { 'lib/netstandard2.0/de/Newtonsoft.Json.resources.dll': { locale: 'de' } });
  });

  test('dependencies: met by the app (or by another update of the batch), else refused', async () => {
    const depsText = JSON.stringify({
      runtimeTarget: { name: '.NETCoreApp,Version=v8.0', signature: '' },
      targets: { '.NETCoreApp,Version=v8.0': {
        'app/1.0.0': { dependencies: { 'A.Lib': '1.0.0', 'B.Lib': '1.0.0' }, runtime: { 'app.dll': {} } },
        'A.Lib/1.0.0': { dependencies: { 'B.Lib': '1.0.0' }, runtime: { 'lib/net6.0/A.Lib.dll': { assemblyVersion: '1.0.0.0', fileVersion: '1.0.0.0' } } },
        'B.Lib/1.0.0': { runtime: { 'lib/net6.0/B.Lib.dll': { assemblyVersion: '1.0.0.0', fileVersion: '1.0.0.0' } } },
      } },
      libraries: {
        'app/1.0.0': { type: 'project', serviceable: false, sha512: '' },
        'A.Lib/1.0.0': { type: 'package', serviceable: true, sha512: 'sha512-x', path: 'a.lib/1.0.0', hashPath: 'a.lib.1.0.0.nupkg.sha512' },
        'B.Lib/1.0.0': { type: 'package', serviceable: true, sha512: 'sha512-y', path: 'b.lib/1.0.0', hashPath: 'b.lib.1.0.0.nupkg.sha512' },
      },
    }, null, 2);
    const pkg = (id: string, version: string, deps: string) => memoryNupkg({
      [`${id}.nuspec`]: `<package><metadata><id>${id}</id><version>${version}</version><dependencies><group targetFramework="net6.0">${deps}</group></dependencies></metadata></package>`,
      [`lib/net6.0/${id}.dll`]: syntheticAssembly({ name: id, assemblyVersion: `${version}.0`, fileVersion: `${version}.7` }),
    });
    const a2 = { name: 'A.Lib', from: '1.0.0', to: '2.0.0', sha512: 'a', nupkg: pkg('A.Lib', '2.0.0', '<dependency id="b.lib" version="2.0.0" />') };
    const b2 = { name: 'B.Lib', from: '1.0.0', to: '2.0.0', sha512: 'b', nupkg: pkg('B.Lib', '2.0.0', '') };
    const app = appWith('app/A.Lib.dll', 'app/B.Lib.dll');
    const alone = await updateDotnetApp({ depsPath: 'app/app.deps.json', depsText, app, packages: [a2] });
    assert.deepEqual(alone.failed.map((f) => [f.name, f.error.code, f.error.message]), [['A.Lib', 'DOTNET_WOULD_ADD', 'A.Lib 2.0.0 depends on b.lib 2.0.0; the app has 1.0.0']]);
    const both = await updateDotnetApp({ depsPath: 'app/app.deps.json', depsText, app, packages: [a2, b2] });
    assert.deepEqual(both.failed, []);
    const target = JSON.parse(both.depsJson!.toString('utf8')).targets['.NETCoreApp,Version=v8.0'];
    assert.deepEqual(target['A.Lib/2.0.0'].dependencies, { 'B.Lib': '2.0.0' });
    assert.deepEqual(target['app/1.0.0'].dependencies, { 'A.Lib': '2.0.0', 'B.Lib': '2.0.0' });
    assert.deepEqual(target['A.Lib/2.0.0'].runtime, { 'lib/net6.0/A.Lib.dll': { assemblyVersion: '2.0.0.0', fileVersion: '2.0.0.7' } });
    // B's update failing takes A's down with it: A needs B 2.0.0.
    const bBroken = { ...b2, nupkg: memoryNupkg({ 'B.Lib.nuspec': '<package><metadata><id>B.Lib</id><version>2.0.0</version></metadata></package>', 'lib/net6.0/B.Lib.dll': 'not a PE file' }) };
    const broken = await updateDotnetApp({ depsPath: 'app/app.deps.json', depsText, app, packages: [a2, bBroken] });
    assert.deepEqual(broken.failed.map((f) => [f.name, f.error.code]).sort(), [['A.Lib', 'DOTNET_WOULD_ADD'], ['B.Lib', 'NUPKG_INVALID']]);
    assert.equal(broken.depsJson, undefined);
  });

  test('refusals: the wrong package, a DLL that is no assembly, assets patchd does not swap, a package deps.json lacks', async () => {
    const codes = async (u: DotnetPackageUpdate, depsText?: string) => (await updateDotnetApp({ depsPath: 'app/demo.deps.json', depsText: depsText ?? await demoDeps(), app: appWith('app/Newtonsoft.Json.dll'), packages: [u] })).failed.map((f) => f.error.code);
    const wrongVersion = (await nuspec13()).replace('<version>13.0.1</version>', '<version>13.0.2</version>');
    assert.deepEqual(await codes(await update({ nupkg: await newtonsoft13Memory({ 'Newtonsoft.Json.nuspec': wrongVersion }) })), ['NUPKG_INVALID']);
    assert.deepEqual(await codes(await update({ nupkg: await newtonsoft13Memory({ 'lib/netstandard2.0/Newtonsoft.Json.dll': 'placeholder' }) })), ['NUPKG_INVALID']);
    assert.deepEqual(await codes(await update({ nupkg: await newtonsoft13Memory({ 'runtimes/linux-x64/native/libjson.so': 'elf' }) })), ['DOTNET_UNSUPPORTED']);
    assert.deepEqual(await codes(await update({ from: '11.0.2' })), ['DEPS_JSON_INVALID']);
    const native = (await demoDeps()).replace('"runtime": {\n          "lib/netstandard2.0', '"native": { "runtimes/linux-x64/native/x.so": {} },\n        "runtime": {\n          "lib/netstandard2.0');
    assert.deepEqual(await codes(await update(), native), ['DOTNET_UNSUPPORTED']);
    assert.deepEqual(await codes(await update(), '{ not json'), ['DEPS_JSON_INVALID']);
  });
});

describe('.nupkg archives', () => {
  test('a package zipped by Info-ZIP: names listed, entries read selectively and checked', async () => {
    const built = await newtonsoft13Nupkg(work);
    const handle = await open(built.path, 'r');
    try {
      const z = await openNupkg(handle, 'Newtonsoft.Json 13.0.1');
      assert.ok(z.names.includes('Newtonsoft.Json.nuspec') && z.names.includes('_rels/.rels') && z.names.includes('lib/netstandard2.0/Newtonsoft.Json.dll'));
      assert.ok(!z.names.some((n) => n.endsWith('/')));
      const dll = await z.read('lib/net45/Newtonsoft.Json.dll');
      assert.deepEqual(readAssemblyVersions(dll), { assemblyVersion: '13.0.0.0', fileVersion: '13.0.1.25517' });
      await assert.rejects(z.read('lib/net45/Newtonsoft.Json.dll', 100), (e: DotnetError) => e.code === 'NUPKG_INVALID' && /larger than 100 bytes/.test(e.message));
      await assert.rejects(z.read('nope'), (e: DotnetError) => e.code === 'NUPKG_INVALID');
    } finally { await handle.close(); }
  });

  test('damaged packages are NUPKG_INVALID', async () => {
    const built = await buildNupkg(work, { id: 'Tiny', version: '1.0.0', nuspec: '<package><metadata><id>Tiny</id><version>1.0.0</version></metadata></package>', files: { 'lib/net6.0/Tiny.dll': 'x'.repeat(5000) } });
    const bytes = await readFile(built.path);
    const cut = join(work, 'cut.nupkg');
    await writeFile(cut, bytes);
    await truncate(cut, bytes.length - 30);
    const h1 = await open(cut, 'r');
    await assert.rejects(openNupkg(h1, 'cut'), (e: DotnetError) => e.code === 'NUPKG_INVALID');
    await h1.close();
    // Flip bytes inside the compressed data of the DLL: inflating or the size check catches it.
    const bent = Buffer.from(bytes);
    const at = bent.indexOf(Buffer.from('lib/net6.0/Tiny.dll')) + 'lib/net6.0/Tiny.dll'.length + 5;
    for (let i = 0; i < 8; i++) bent[at + i] = bent[at + i]! ^ 0xff;
    const bentPath = join(work, 'bent.nupkg');
    await writeFile(bentPath, bent);
    const h2 = await open(bentPath, 'r');
    try {
      const z = await openNupkg(h2, 'bent');
      await assert.rejects(z.read('lib/net6.0/Tiny.dll'), (e: DotnetError) => e.code === 'NUPKG_INVALID');
    } finally { await h2.close(); }
    const h3 = await open(join(fixtures, 'dotnet/app/demo.deps.json'), 'r');
    await assert.rejects(openNupkg(h3, 'not a zip'), (e: DotnetError) => e.code === 'NUPKG_INVALID' && /end of central directory/.test(e.message));
    await h3.close();
  });
});

describe('the BuildKit step', () => {
  const platform = { os: 'linux', architecture: 'amd64' };
  const target = image('127.0.0.1:5000/app@sha256:' + 'a'.repeat(64), { platform });
  const tooling = image('127.0.0.1:5000/tooling/dotnet-sdk:8.0', { platform });
  const program = new Map([['patchd-dotnet--entry.mjs', Buffer.from('// entry')], ['patchd-dotnet--lib.mjs', Buffer.from('// lib')]]);
  const good: DotnetSdkUpdate = {
    depsPath: 'app/demo.deps.json', indexUrl: 'https://nuget.example.test/v3-flatcontainer/', entry: 'patchd-dotnet--entry.mjs', program,
    packages: [{ name: 'Newtonsoft.Json', from: '12.0.1', to: '13.0.1', fileVersion: '13.0.1' }],
  };

  test('one exec in the tooling image: the target at /target, every value an argument, the result the /target mount', () => {
    const upper = dotnetSdkUpdate(target, tooling, good);
    const exec = upper.node.body as { kind: string; args: readonly string[]; env: readonly string[]; mounts: readonly { dest: string }[] };
    assert.equal(exec.kind, 'exec');
    assert.deepEqual(exec.args, ['/bin/sh', '/tmp/patchd-dotnet-update.sh', 'https://nuget.example.test/v3-flatcontainer', 'app/demo.deps.json', 'patchd-dotnet--entry.mjs', 'Newtonsoft.Json', '12.0.1', '13.0.1', '13.0.1']);
    assert.deepEqual(exec.mounts.map((m) => m.dest), ['/', '/target']);
    assert.equal(upper.output, 1, 'the writable /target mount, not the tooling root');
    assert.ok(exec.env.includes('DOTNET_CLI_TELEMETRY_OPTOUT=1'));
    assert.ok(marshal(diff(target, upper)).digests.length >= 6, 'image, image, 3 mkfiles, exec, diff, terminal');
  });

  test('values that could reach a shell or leave the image are refused', () => {
    const refused = (over: Partial<DotnetSdkUpdate>) => assert.throws(() => dotnetSdkUpdate(target, tooling, { ...good, ...over }), (e: BuildkitError) => e.code === 'BUILD_REQUEST_INVALID', JSON.stringify(over));
    refused({ indexUrl: 'https://user:pw@nuget.example.test/v3-flatcontainer' });
    refused({ indexUrl: 'https://nuget.example.test/v3?x=$(id)' });
    refused({ indexUrl: 'file:///etc/passwd' });
    refused({ depsPath: '../app/demo.deps.json' });
    refused({ depsPath: 'app/demo.json' });
    refused({ depsPath: '/app/demo.deps.json' });
    refused({ packages: [] });
    refused({ packages: [{ name: 'a;rm -rf /', from: '1.0.0', to: '2.0.0', fileVersion: '2.0.0' }] });
    refused({ packages: [{ name: 'A', from: '1.0.0', to: '$(id)', fileVersion: '2.0.0' }] });
    refused({ packages: [{ name: 'A', from: '1.0.0', to: '2.0.0', fileVersion: '2.0.0/../x' }] });
    refused({ program: new Map([...program, ['../evil.mjs', Buffer.from('')]]) });
    refused({ entry: 'patchd-dotnet--missing.mjs' });
  });
});

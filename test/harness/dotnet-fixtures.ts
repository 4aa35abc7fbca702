import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { syntheticAssembly, type SyntheticAssembly } from './dotnet-assembly.js';
import { run } from './tools.js';

// .NET fixtures built here: nothing on this machine compiles C# and NuGet is
// out of reach, so (see fixtures/dotnet/README.md) the .nupkg is zipped by the
// real `zip` from the fixture .nuspec and synthetic DLLs, and a loopback HTTP
// server plays a NuGet flat container (PackageBaseAddress) serving it.

const fixtures = new URL('../../fixtures/dotnet/', import.meta.url).pathname;

/** Newtonsoft.Json 13.0.1's lib/ folders, as the real package has them. */
export const newtonsoft13Frameworks = ['net20', 'net35', 'net40', 'net45', 'netstandard1.0', 'netstandard1.3', 'netstandard2.0'] as const;

export interface NupkgSpec {
  readonly id: string;
  readonly version: string;
  readonly nuspec: string;
  /** Package-relative path → content (synthetic assemblies for DLLs). */
  readonly files: Readonly<Record<string, Buffer | string>>;
}

/** A .nupkg zipped by Info-ZIP `zip` (OPC parts included as NuGet writes them); its path and base64 SHA-512. */
export async function buildNupkg(dir: string, spec: NupkgSpec): Promise<{ path: string; sha512: string }> {
  const stage = join(dir, `stage-${spec.id}.${spec.version}`);
  await rm(stage, { recursive: true, force: true });
  const files: Record<string, Buffer | string> = {
    [`${spec.id}.nuspec`]: spec.nuspec,
    '[Content_Types].xml': '<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml" /><Default Extension="nuspec" ContentType="application/octet" /><Default Extension="dll" ContentType="application/octet" /><Default Extension="xml" ContentType="application/octet" /><Default Extension="psmdcp" ContentType="application/vnd.openxmlformats-package.core-properties+xml" /></Types>',
    '_rels/.rels': `<?xml version="1.0" encoding="utf-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Type="http://schemas.microsoft.com/packaging/2010/07/manifest" Target="/${spec.id}.nuspec" Id="R1" /></Relationships>`,
    'package/services/metadata/core-properties/0f1e2d3c4b5a69788796a5b4c3d2e1f0.psmdcp': `<?xml version="1.0" encoding="utf-8"?><coreProperties><identifier>${spec.id}</identifier><version>${spec.version}</version></coreProperties>`,
    ...spec.files,
  };
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(stage, path)), { recursive: true });
    await writeFile(join(stage, path), content);
  }
  const path = join(dir, `${spec.id.toLowerCase()}.${spec.version}.nupkg`);
  await rm(path, { force: true });
  // -X: no extra attributes, -D: no directory entries (NuGet writes none).
  await run('zip', ['-q', '-X', '-D', '-r', path, '.'], { cwd: stage });
  await rm(stage, { recursive: true, force: true });
  return { path, sha512: createHash('sha512').update(await readFile(path)).digest('base64') };
}

/** The Newtonsoft.Json 13.0.1 stand-in: the fixture nuspec, one synthetic DLL (and XML doc) per lib/ folder, each marked with its folder. */
export async function newtonsoft13Nupkg(dir: string): Promise<{ path: string; sha512: string }> {
  const files: Record<string, Buffer | string> = {};
  for (const tfm of newtonsoft13Frameworks) {
    files[`lib/${tfm}/Newtonsoft.Json.dll`] = newtonsoftDll('13.0.0.0', '13.0.1.25517', `lib/${tfm}`);
    files[`lib/${tfm}/Newtonsoft.Json.xml`] = `<?xml version="1.0"?><doc><assembly><name>Newtonsoft.Json</name></assembly><!-- ${tfm} --></doc>`;
  }
  files['LICENSE.md'] = 'The MIT License (MIT)\n';
  return buildNupkg(dir, { id: 'Newtonsoft.Json', version: '13.0.1', nuspec: await readFile(join(fixtures, 'newtonsoft.json.13.0.1/Newtonsoft.Json.nuspec'), 'utf8'), files });
}

export function newtonsoftDll(assemblyVersion: string, fileVersion: string, marker: string): Buffer {
  const spec: SyntheticAssembly = { name: 'Newtonsoft.Json', assemblyVersion, fileVersion, marker, typeRefs: 40, typeDefs: 12 };
  return syntheticAssembly(spec);
}

/**
 * The app as `dotnet publish` lays out a net6.0 framework-dependent app
 * using Newtonsoft.Json 12.0.1, under `root/app`: the fixture deps.json and
 * runtimeconfig.json, the package's DLL (synthetic, 12.0.0.0 / 12.0.1.22727),
 * and the app's own demo.dll (a placeholder: nothing reads it).
 */
export async function demoApp(root: string): Promise<string> {
  const app = join(root, 'app');
  await mkdir(app, { recursive: true });
  await copyFile(join(fixtures, 'app/demo.deps.json'), join(app, 'demo.deps.json'));
  await copyFile(join(fixtures, 'app/demo.runtimeconfig.json'), join(app, 'demo.runtimeconfig.json'));
  await writeFile(join(app, 'Newtonsoft.Json.dll'), newtonsoftDll('12.0.0.0', '12.0.1.22727', 'Newtonsoft.Json 12.0.1'));
  await writeFile(join(app, 'demo.dll'), 'placeholder for the app\'s own assembly (patchd never touches it)\n');
  return app;
}

export interface FlatContainerPackage {
  readonly id: string;
  readonly version: string;
  readonly file: string;
  /** The `.nupkg.sha512` served: the file's own by default; a string serves that instead; false serves none (404). */
  readonly sha512?: string | false;
}

export interface FlatContainer {
  /** `http://127.0.0.1:PORT/v3-flatcontainer` */
  readonly url: string;
  /** Request paths, in order. */
  readonly requests: string[];
  /** The Authorization header of each request (undefined when none was sent). */
  readonly authorizations: (string | undefined)[];
  /** Answer every request with this status (e.g. 503) until cleared. */
  failWith: number | undefined;
  stop(): Promise<void>;
}

/** A NuGet flat container on loopback: `<id>/index.json`, `<id>/<v>/<id>.<v>.nupkg` and `.nupkg.sha512`. */
export async function startFlatContainer(packages: readonly FlatContainerPackage[], extraVersions: Readonly<Record<string, readonly string[]>> = {}): Promise<FlatContainer> {
  const requests: string[] = [];
  const authorizations: (string | undefined)[] = [];
  const state: { failWith: number | undefined } = { failWith: undefined };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push(path);
      authorizations.push(req.headers.authorization);
      if (state.failWith !== undefined) { res.writeHead(state.failWith).end(); return; }
      const m = /^\/v3-flatcontainer\/([^/]+)\/(?:index\.json|([^/]+)\/([^/]+))$/.exec(path);
      if (!m) { res.writeHead(404).end(); return; }
      const id = m[1]!;
      if (!m[2]) {
        const versions = [...new Set([...(extraVersions[id] ?? []), ...packages.filter((p) => p.id.toLowerCase() === id).map((p) => p.version.toLowerCase())])];
        if (versions.length === 0) { res.writeHead(404).end(); return; }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ versions }));
        return;
      }
      const pkg = packages.find((p) => p.id.toLowerCase() === id && p.version.toLowerCase() === m[2]);
      const stem = `${id}.${m[2]}.nupkg`;
      if (!pkg || (m[3] !== stem && m[3] !== `${stem}.sha512`)) { res.writeHead(404).end(); return; }
      const bytes = await readFile(pkg.file);
      if (m[3] === stem) { res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(bytes); return; }
      if (pkg.sha512 === false) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(pkg.sha512 ?? createHash('sha512').update(bytes).digest('base64'));
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/v3-flatcontainer`,
    requests,
    authorizations,
    get failWith() { return state.failWith; },
    set failWith(value) { state.failWith = value; },
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

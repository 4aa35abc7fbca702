import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type RunResult, type TempDir } from '../harness/tools.js';

// The README's Copa table, run: every row's example command line against a
// real registry holding the images the table's introduction describes, and
// every clause of its result column checked. The table is parsed out of
// README.md, so the README and this test cannot drift apart; a clause this
// test does not know fails the row.

const repoRoot = new URL('../..', import.meta.url).pathname;
const readmeHost = 'localhost:5000';
const fixedVersion = '2.5.0-1+deb12u2';
const trivyReport = {
  SchemaVersion: 2, ArtifactName: 'app:main',
  Results: [{ Target: 'app:main (debian 12)', Class: 'os-pkgs', Type: 'debian', Vulnerabilities: [
    { VulnerabilityID: 'CVE-2024-45491', PkgName: 'libexpat1', InstalledVersion: fixedVersion, FixedVersion: '2.5.0-1+deb12u3', Severity: 'HIGH' },
  ] }],
};

interface Row { readonly flag: string; readonly example: string; readonly result: string }

/** The table under "### Copa's command line": its Example and Result columns, by header name. */
async function copaTable(): Promise<Row[]> {
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split(/^### Copa's command line$/m)[1]?.split(/^#{2,3} /m)[0];
  assert.ok(section, 'README.md has a "### Copa\'s command line" section');
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const cells = (line: string) => line.slice(1, line.lastIndexOf('|')).split(/(?<!\\)\|/).map((c) => c.trim());
  const header = cells(lines[0]!);
  const column = (name: string) => {
    const i = header.indexOf(name);
    assert.ok(i >= 0, `the Copa table has a ${name} column (header: ${header.join(', ')})`);
    return i;
  };
  const [flag, example, result] = [column('Copa v0.14 flag'), column('Example'), column('Result')];
  return lines.slice(2).map((line) => {
    const c = cells(line);
    return { flag: c[flag]!, example: c[example]!.replace(/^`|`$/g, ''), result: c[result]! };
  });
}

let registry: RunningRegistry;
let work: TempDir;
let cwd: string;
let baseLayer: string;
const initialFiles = new Set<string>();

async function putIndex(repository: string, tag: string, body: unknown): Promise<void> {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: JSON.stringify(body),
  });
  assert.equal(res.status, 201, `the registry takes the ${repository}:${tag} index (HTTP ${res.status})`);
}

async function rawManifest(ref: string): Promise<{ digest: string; json: Record<string, any> }> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return { digest: `sha256:${createHash('sha256').update(stdout).digest('hex')}`, json: JSON.parse(stdout) };
}

/** Every repository's tags and what they point at. */
async function registryState(): Promise<Map<string, string>> {
  const catalog = await (await fetch(`${registry.url}/v2/_catalog`)).json() as { repositories: string[] };
  const state = new Map<string, string>();
  for (const repository of catalog.repositories) {
    const tags = await (await fetch(`${registry.url}/v2/${repository}/tags/list`)).json() as { tags: string[] | null };
    for (const tag of tags.tags ?? []) {
      const head = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' } });
      state.set(`${repository}:${tag}`, head.headers.get('docker-content-digest') ?? '');
    }
  }
  return state;
}

let initialState: Map<string, string>;

/** Back to the state the table's introduction describes: tags the row added are deleted, files it wrote removed. */
async function reset(): Promise<void> {
  const now = await registryState();
  const kept = new Set(initialState.values());
  for (const [name, digest] of now) {
    if (initialState.get(name) === digest || kept.has(digest)) continue;
    const repository = name.slice(0, name.lastIndexOf(':'));
    const res = await fetch(`${registry.url}/v2/${repository}/manifests/${digest}`, { method: 'DELETE' });
    assert.ok(res.status === 202 || res.status === 404, `deleting ${name} (${digest}) answers 202 (got ${res.status})`);
  }
  for (const entry of await readdir(cwd)) if (!initialFiles.has(entry)) await rm(join(cwd, entry), { recursive: true, force: true });
}

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-copa-flags');
  cwd = join(work.path, 'cwd');
  await mkdir(join(cwd, 'reports'), { recursive: true });
  await writeFile(join(cwd, 'trivy.json'), JSON.stringify(trivyReport));
  for (const f of await readdir(cwd)) initialFiles.add(f);

  const tarPath = await bookwormRootfsTar();
  const app = await pushRootfsImage({ tarPath, registryHost: registry.host, repository: 'app', tag: 'main' });
  baseLayer = app.layerDigest;
  // multi:v1, an index of the same Debian image for two platforms (the arm64 one is never run, only patched or kept).
  const amd64 = await pushRootfsImage({ tarPath, registryHost: registry.host, repository: 'multi', tag: 'amd64' });
  const arm64 = await pushRootfsImage({ tarPath, registryHost: registry.host, repository: 'multi', tag: 'arm64', architecture: 'arm64' });
  const size = async (tag: string) => (await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/multi:${tag}`])).stdout.length;
  await putIndex('multi', 'v1', {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd64.digest, size: await size('amd64'), platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm64.digest, size: await size('arm64'), platform: { architecture: 'arm64', os: 'linux' } },
    ],
  });
  initialState = await registryState();
});

after(async () => {
  await registry?.stop();
  await work?.remove();
});

function patchd(args: readonly string[]): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: join(work.path, 'cache') };
  for (const name of ['BUILDKIT_HOST', 'PATCHD_BUILDKIT_ADDR', 'PATCHD_LOG_LEVEL', 'PATCHD_ADVISORIES', 'PATCHD_REGISTRY_USERNAME']) delete env[name];
  return run('node', [join(repoRoot, 'bin/patchd.js'), ...args], { cwd, env, allowFailure: true, timeoutMs: 10 * 60_000 });
}

const local = (text: string) => text.replaceAll(readmeHost, registry.host);

/** Checks one clause of a Result cell; returns false for a clause it does not know. */
async function checkClause(clause: string, row: Row, args: readonly string[], result: RunResult, before: Map<string, string>): Promise<boolean> {
  const where = `${row.example} → ${clause}\nstdout: ${result.stdout.slice(-1500)}\nstderr: ${result.stderr.slice(-1500)}`;
  const source = local(args[args.indexOf('-i') + 1] ?? '');
  const pushedRef = /pushes `([^`]+)`/.exec(row.result)?.[1];
  const layout = /writes the OCI layout `([^`]+)` tagged `([^`]+)`/.exec(row.result);
  let m: RegExpExecArray | null;
  if ((m = /^exit (\d+)$/.exec(clause))) {
    assert.equal(result.code, Number(m[1]), `exit code: ${where}`);
  } else if ((m = /^(stdout|stderr) has `([^`]+)`$/.exec(clause))) {
    assert.ok(result[m[1] as 'stdout' | 'stderr'].includes(local(m[2]!)), `${m[1]} has the text: ${where}`);
  } else if ((m = /^stdout lacks `([^`]+)`$/.exec(clause))) {
    assert.ok(!result.stdout.includes(m[1]!), `stdout lacks the text: ${where}`);
  } else if (clause === 'stderr is empty') {
    assert.equal(result.stderr, '', `stderr is empty: ${where}`);
  } else if (clause === 'pushes nothing') {
    assert.deepEqual([...(await registryState())], [...before], `no tag was added or moved: ${where}`);
  } else if ((m = /^pushes `([^`]+)`$/.exec(clause))) {
    const pushed = await rawManifest(local(m[1]!));
    const original = await rawManifest(source);
    assert.equal(pushed.json['annotations']?.['io.patchd.patched'] !== undefined, true, `the pushed manifest is patchd's: ${where}`);
    assert.equal(pushed.json['annotations']?.['org.opencontainers.image.base.digest'], original.digest, `its base is the -i image: ${where}`);
    if (pushed.json['layers']) {
      assert.equal(pushed.json['layers'].length, 2, `the original layer plus one: ${where}`);
      assert.equal(pushed.json['layers'][0].digest, baseLayer, `the original layer is kept: ${where}`);
    }
  } else if ((m = /^(patches|keeps) `([^`/]+)\/([^`]+)`$/.exec(clause))) {
    assert.ok(pushedRef || layout, `a patches/keeps clause goes with a pushes or OCI layout clause: ${where}`);
    const [os, architecture] = [m[2]!, m[3]!];
    const entry = (json: Record<string, any>) => (json['manifests'] as { digest: string; platform?: { os: string; architecture: string } }[])
      .find((e) => e.platform?.os === os && e.platform.architecture === architecture)?.digest;
    // The result's index, from the registry or from the layout (read by skopeo).
    const resultRef = pushedRef ? `docker://${local(pushedRef)}` : `oci:${join(cwd, layout![1]!)}:${layout![2]}`;
    const resultIndex = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', resultRef])).stdout) as Record<string, any>;
    const pushed = entry(resultIndex);
    const original = entry((await rawManifest(source)).json);
    assert.ok(pushed && original, `both indexes list ${os}/${architecture}: ${where}`);
    if (m[1] === 'keeps') assert.equal(pushed, original, `${os}/${architecture} keeps its manifest: ${where}`);
    else {
      assert.notEqual(pushed, original, `${os}/${architecture} points at a patched manifest: ${where}`);
      // skopeo 1.9 has no digest references into a layout: the layout's blob file is read as it is.
      const patched = JSON.parse(pushedRef
        ? (await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${local(pushedRef).slice(0, local(pushedRef).lastIndexOf(':'))}@${pushed}`])).stdout
        : await readFile(join(cwd, layout![1]!, 'blobs', 'sha256', pushed.slice('sha256:'.length)), 'utf8')) as { layers: unknown[] };
      assert.equal(patched.layers.length, 2, `the patched platform has one layer more: ${where}`);
    }
  } else if ((m = /^creates `([^`]+)`$/.exec(clause))) {
    assert.ok((await stat(join(cwd, m[1]!)).catch(() => undefined))?.isDirectory(), `the directory exists: ${where}`);
  } else if ((m = /^writes OpenVEX `([^`]+)` naming `([^`]+)`$/.exec(clause))) {
    const vex = JSON.parse(await readFile(join(cwd, m[1]!), 'utf8')) as { '@context': string; statements: { vulnerability: { name: string }; status: string; products: { '@id': string }[] }[] };
    assert.equal(vex['@context'], 'https://openvex.dev/ns/v0.2.0', `an OpenVEX 0.2.0 document: ${where}`);
    assert.ok(vex.statements.length > 0 && vex.statements.every((s) => s.status === 'fixed'), `only fixed statements: ${where}`);
    const statement = vex.statements.find((s) => s.vulnerability.name === m![2]);
    assert.ok(statement, `a statement for ${m[2]}: ${where}`);
    if (pushedRef) {
      const digest = (await rawManifest(local(pushedRef))).digest;
      // A purl: the digest's colon is percent-encoded.
      assert.ok(statement.products.some((p) => p['@id'].startsWith(`pkg:oci/app@${digest.replace(':', '%3A')}`)), `its product is the pushed image ${digest}: ${where}\n${JSON.stringify(statement.products)}`);
    }
  } else if ((m = /^writes the OCI layout `([^`]+)` tagged `([^`]+)`$/.exec(clause))) {
    await checkLayout(join(cwd, m[1]!), m[2]!, where);
  } else {
    return false;
  }
  return true;
}

/** The layout read by tools that are not patchd: umoci lists and unpacks it, skopeo inspects it. */
async function checkLayout(dir: string, tag: string, where: string): Promise<void> {
  const listed = await run('umoci', ['ls', '--layout', dir]);
  assert.ok(listed.stdout.split('\n').includes(tag), `umoci lists ${tag}: ${where}\n${listed.stdout}`);
  const inspected = JSON.parse((await run('skopeo', ['--override-os', 'linux', '--override-arch', 'amd64', 'inspect', `oci:${dir}:${tag}`])).stdout) as { Layers: string[]; Architecture: string };
  assert.equal(inspected.Layers.length, 2, `skopeo sees the original layer plus one: ${where}`);
  assert.equal(inspected.Layers[0], baseLayer, `the original layer is there as it was: ${where}`);
  const bundle = join(work.path, 'bundle');
  await rm(bundle, { recursive: true, force: true });
  let image = `${dir}:${tag}`;
  const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${dir}:${tag}`])).stdout) as { manifests?: unknown[] };
  if (raw.manifests) {
    // An index: skopeo copies every platform out of it (so every blob must be there, and match its digest); umoci unpacks amd64's.
    const copies = join(work.path, 'copies');
    await rm(copies, { recursive: true, force: true });
    await run('skopeo', ['copy', '--all', `oci:${dir}:${tag}`, `oci:${copies}:all`]);
    await run('skopeo', ['--override-os', 'linux', '--override-arch', 'amd64', 'copy', `oci:${dir}:${tag}`, `oci:${copies}:amd64`]);
    image = `${copies}:amd64`;
  }
  await run('umoci', ['unpack', '--image', image, bundle]);
  const status = await readFile(join(bundle, 'rootfs/var/lib/dpkg/status'), 'utf8');
  const version = /^Package: libexpat1\n(?:[^\n]+\n)*?Version: (\S+)/m.exec(status)?.[1];
  assert.ok(version && version !== fixedVersion, `the unpacked image has libexpat1 upgraded from ${fixedVersion} (has ${version}): ${where}`);
  await rm(bundle, { recursive: true, force: true });
}

const rows = await copaTable();

test('the README\'s Copa table covers every flag of copa patch v0.14.2', () => {
  // Copa v0.14.2 pkg/cmd/cmd.go (experimental ones included) and main.go's --debug.
  const copaFlags = ['--config', '--image', '--report', '--tag', '--tag-suffix', '--working-folder', '--addr', '--cacert', '--cert', '--key', '--timeout', '--scanner', '--ignore-errors',
    '--format', '--output', '--push', '--oci-dir', '--platform', '--loader', '--eol-api-url', '--exit-on-eol', '--progress', '--compression', '--force-compression',
    '--pkg-types', '--library-patch-level', '--toolchain-patch-level', '--go-vcs-url', '--debug'];
  const named = rows.map((r) => r.flag).join(' ');
  const missing = copaFlags.filter((f) => !new RegExp(`\`${f}\``).test(named) && !new RegExp(`, ${f}\``).test(named));
  assert.deepEqual(missing, [], `every Copa flag has a row (missing: ${missing.join(', ')})`);
  assert.ok(rows.every((r) => r.example.startsWith('patchd patch ') && /exit \d/.test(r.result)), 'every row has a patchd patch example and an exit code');
});

for (const row of rows) {
  test(`${row.flag}: ${row.example}`, { timeout: 12 * 60_000 }, async () => {
    const args = local(row.example).split(/\s+/).slice(1);
    const before = await registryState();
    const started = Date.now();
    const result = await patchd(args);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    try {
      for (const clause of row.result.split(/;\s*/)) {
        assert.ok(await checkClause(clause.trim(), row, args, result, before), `a result clause this test knows how to check: "${clause}"`);
      }
    } finally {
      process.stdout.write(`# ${seconds}s: ${row.example}\n`);
      await reset();
    }
  });
}

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { crc32, deflateRawSync } from 'node:zlib';
import { MockAgent } from 'undici';
import { image } from '../../src/executors/buildkit/llb.js';
import type { OpBody } from '../../src/executors/buildkit/proto/ops.js';
import { pipInstall } from '../../src/executors/buildkit/strategies/pip.js';
import { ImageFilesystem } from '../../src/image/filesystem.js';
import { createLayerBuilder } from '../../src/image/layer-builder.js';
import { PythonError } from '../../src/executors/python/errors.js';
import { pythonExecutor } from '../../src/executors/python/executor.js';
import { silentLogger } from '../../src/lib/log.js';
import type { PlannedLibrary } from '../../src/plan/types.js';
import { installWheel, readOldInstall } from '../../src/executors/python/install.js';
import { describePlace, imageLibc } from '../../src/executors/python/interpreter.js';
import { downloadVerified, releaseFiles, simpleIndexUrl } from '../../src/executors/python/package-index.js';
import { formatRecord, parseRecord, resolveRecordPath, sha256Record } from '../../src/executors/python/record.js';
import { requiresPythonVerdict, satisfiesRequiresPython } from '../../src/executors/python/requires-python.js';
import { fixScriptShebang, scriptsToGenerate, scriptWrapper, shebangOf } from '../../src/executors/python/scripts.js';
import { linuxPlatformTags, parseWheelName, selectWheel, supportedTags, wheelArch, type InterpreterTarget, type ReleaseFile } from '../../src/executors/python/tags.js';
import { openWheel, parseEntryPoints } from '../../src/executors/python/wheel.js';
import type { Inventory } from '../../src/scan/inventory/types.js';
import { layerFromEntries, type TarEntry } from '../harness/layers.js';

// Wheel selection against packaging's own sys_tags order (fixtures/pypi/tags-reference.json,
// written by packaging 24.2 from the real PyPI file lists beside it), RECORD reading and
// writing as pip does it, confinement of the paths an old RECORD names, and a whole
// install of a wheel over an old one into a layer, read back through the merged view.

const fixtures = new URL('../../fixtures/pypi/', import.meta.url).pathname;
let work: string;
before(async () => { work = await mkdtemp(join(tmpdir(), 'patchd-python-')); });
after(async () => { await rm(work, { recursive: true, force: true }); });

interface Reference {
  arch: string; libc: 'glibc' | 'musl'; libcVersion: [number, number]; python: [number, number]; freeThreaded?: boolean;
  count: number; sha256: string; head: string[]; picks: Record<string, string | null>;
}
const references = async (): Promise<Reference[]> => JSON.parse(await readFile(join(fixtures, 'tags-reference.json'), 'utf8'));
const targetOf = (r: Reference): InterpreterTarget => ({
  implementation: 'cpython', version: { major: r.python[0], minor: r.python[1] }, freeThreaded: r.freeThreaded ?? false,
  arch: r.arch, libc: { family: r.libc, major: r.libcVersion[0], minor: r.libcVersion[1] },
});
async function releaseOf(name: string): Promise<ReleaseFile[]> {
  const json = JSON.parse(await readFile(join(fixtures, `${name}.json`), 'utf8')) as { releases: Record<string, { filename: string; url: string; digests: { sha256: string }; requires_python: string | null; yanked: boolean }[]> };
  return Object.values(json.releases)[0]!.map((f) => ({ filename: f.filename, url: f.url, sha256: f.digests.sha256, ...(f.requires_python ? { requiresPython: f.requires_python } : {}), yanked: f.yanked }));
}

test('supported tags are packaging\'s sys_tags, in its order, for glibc and musl on six architectures', async () => {
  for (const r of await references()) {
    const tags = supportedTags(targetOf(r));
    const label = `${r.arch} ${r.libc} ${r.libcVersion.join('.')} cp${r.python.join('')}${r.freeThreaded ? 't' : ''}`;
    assert.deepEqual(tags.slice(0, r.head.length), r.head, label);
    assert.equal(tags.length, r.count, label);
    assert.equal(createHash('sha256').update(tags.join('\n')).digest('hex'), r.sha256, label);
  }
});

test('the wheel chosen from real PyPI file lists is the one pip\'s ordering picks (abi3, legacy manylinux aliases, musllinux, pure, none)', async () => {
  for (const r of await references()) {
    const tags = supportedTags(targetOf(r));
    for (const [release, expected] of Object.entries(r.picks)) {
      const chosen = selectWheel(await releaseOf(release), tags);
      assert.equal(chosen?.file.filename ?? null, expected, `${release} for ${r.arch} ${r.libc} ${r.libcVersion.join('.')} cp${r.python.join('')}`);
    }
  }
  // Named cases, readable on their own.
  const x86 = supportedTags({ implementation: 'cpython', version: { major: 3, minor: 11 }, arch: 'x86_64', libc: { family: 'glibc', major: 2, minor: 36 } });
  assert.equal(selectWheel(await releaseOf('cryptography-42.0.5'), x86)?.file.filename, 'cryptography-42.0.5-cp39-abi3-manylinux_2_28_x86_64.whl');
  const oldGlibc = supportedTags({ implementation: 'cpython', version: { major: 3, minor: 11 }, arch: 'x86_64', libc: { family: 'glibc', major: 2, minor: 24 } });
  assert.equal(selectWheel(await releaseOf('cryptography-42.0.5'), oldGlibc)?.file.filename, 'cryptography-42.0.5-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl');
  const arm64 = supportedTags({ implementation: 'cpython', version: { major: 3, minor: 11 }, arch: wheelArch({ architecture: 'arm64' })!, libc: { family: 'glibc', major: 2, minor: 36 } });
  assert.equal(selectWheel(await releaseOf('pyyaml-6.0.1'), arm64)?.file.filename, 'PyYAML-6.0.1-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl');
  const alpine = supportedTags({ implementation: 'cpython', version: { major: 3, minor: 11 }, arch: 'aarch64', libc: { family: 'musl', major: 1, minor: 2 } });
  assert.equal(selectWheel(await releaseOf('charset-normalizer-3.3.2'), alpine)?.file.filename, 'charset_normalizer-3.3.2-cp311-cp311-musllinux_1_1_aarch64.whl');
  // Unknown C library: only pure wheels; sdist-only releases: none.
  const unknown = supportedTags({ implementation: 'cpython', version: { major: 3, minor: 11 }, arch: 'x86_64', libc: { family: 'unknown' } });
  assert.equal(selectWheel(await releaseOf('charset-normalizer-3.3.2'), unknown)?.file.filename, 'charset_normalizer-3.3.2-py3-none-any.whl');
  assert.equal(selectWheel(await releaseOf('cryptography-42.0.5'), unknown), undefined);
  assert.equal(selectWheel(await releaseOf('future-0.18.3'), x86), undefined);
  // PyPy: its ABI is not knowable from files, so binary wheels are never chosen for it.
  const pypy = supportedTags({ implementation: 'pypy', version: { major: 3, minor: 10 }, arch: 'x86_64', libc: { family: 'glibc', major: 2, minor: 36 } });
  assert.equal(selectWheel(await releaseOf('cryptography-42.0.5'), pypy), undefined);
  assert.equal(selectWheel(await releaseOf('urllib3-1.26.19'), pypy)?.file.filename, 'urllib3-1.26.19-py2.py3-none-any.whl');
});

test('selection details: build tags, yanked files last, wheel names parsed and expanded', () => {
  const tags = supportedTags({ implementation: 'cpython', version: { major: 3, minor: 11 }, arch: 'x86_64', libc: { family: 'glibc', major: 2, minor: 36 } });
  const f = (filename: string, yanked = false): ReleaseFile => ({ filename, url: `https://x/${filename}`, yanked });
  assert.equal(selectWheel([f('a-1.0-1-py3-none-any.whl'), f('a-1.0-2-py3-none-any.whl'), f('a-1.0-py3-none-any.whl')], tags)?.file.filename, 'a-1.0-2-py3-none-any.whl');
  assert.equal(selectWheel([f('a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl', true), f('a-1.0-py3-none-any.whl')], tags)?.file.filename, 'a-1.0-py3-none-any.whl');
  assert.equal(selectWheel([f('a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl', true)], tags)?.file.filename, 'a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl');
  assert.equal(selectWheel([f('a-1.0-cp311-cp311-manylinux_2_38_x86_64.whl'), f('a-1.0.tar.gz')], tags), undefined, 'needs a newer glibc than the image has');
  assert.deepEqual(parseWheelName('PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl')?.tags, ['cp311-cp311-manylinux_2_17_x86_64', 'cp311-cp311-manylinux2014_x86_64']);
  assert.equal(parseWheelName('six-1.16.0.tar.gz'), undefined);
  assert.deepEqual(['amd64', 'arm64', '386', 'ppc64le', 's390x'].map((a) => wheelArch({ architecture: a })), ['x86_64', 'aarch64', 'i686', 'ppc64le', 's390x']);
  assert.equal(wheelArch({ architecture: 'arm', variant: 'v7' }), 'armv7l');
  assert.deepEqual(linuxPlatformTags({ arch: 'x86_64', libc: { family: 'musl', major: 1, minor: 2 } }), ['musllinux_1_2_x86_64', 'musllinux_1_1_x86_64', 'musllinux_1_0_x86_64', 'linux_x86_64']);
});

test('Requires-Python: PEP 440 clauses, wildcards, ~=, and an interpreter known only as major.minor', () => {
  const spec = '!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,!=3.5.*,>=2.7';
  assert.equal(satisfiesRequiresPython('3.11.2', spec), true);
  assert.equal(satisfiesRequiresPython('3.5.9', spec), false);
  assert.equal(satisfiesRequiresPython('3.7.3', '>=3.8'), false);
  assert.equal(satisfiesRequiresPython('3.8.0', '~=3.8'), true);
  assert.equal(satisfiesRequiresPython('4.0', '~=3.8'), false);
  assert.equal(satisfiesRequiresPython('3.11.0', '<3.11.4, >=3.7'), true);
  assert.equal(satisfiesRequiresPython('3.10.1', '==3.10.*'), true);
  assert.equal(satisfiesRequiresPython('3.9.1', 'not a specifier'), true, 'invalid clauses are ignored, as pip ignores them');
  assert.equal(requiresPythonVerdict({ major: 3, minor: 7 }, '>=3.8'), false);
  assert.equal(requiresPythonVerdict({ major: 3, minor: 11 }, '>=3.8'), true);
  assert.equal(requiresPythonVerdict({ major: 3, minor: 11 }, '>=3.11.4'), 'unknown');
  assert.equal(requiresPythonVerdict({ major: 3, minor: 11, micro: 7 }, '>=3.11.4'), true);
});

test('RECORD: read with csv quoting, written as pip writes it (sorted, CRLF, urlsafe base64 sha256 without padding)', () => {
  // The bytes below are a RECORD pip 23 wrote (app-layers fixture, chardet 4.0.0).
  assert.equal(sha256Record(Buffer.from('pip\n')), 'sha256=zuuue4knoyJ-UwPPXg8fezS7VCrXJQrAP7zeNuwvFQg');
  assert.equal(sha256Record(Buffer.alloc(0)), 'sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU');
  const text = '../../bin/chardetect,sha256=aR4F8I2YpYSi515rOgfQn14CXI0FBG44X0Q07dPm7g0,245\r\nchardet-4.0.0.dist-info/RECORD,,\r\n"odd,name.py",sha256=x,1\r\n';
  const rows = parseRecord(text);
  assert.deepEqual(rows, [
    { path: '../../bin/chardetect', hash: 'sha256=aR4F8I2YpYSi515rOgfQn14CXI0FBG44X0Q07dPm7g0', size: 245 },
    { path: 'chardet-4.0.0.dist-info/RECORD' },
    { path: 'odd,name.py', hash: 'sha256=x', size: 1 },
  ]);
  assert.equal(formatRecord(rows), text, 'sorted by path as Python sorts strings; quoted only where csv needs it');
});

test('RECORD paths resolve inside the image root or not at all', () => {
  const site = 'usr/local/lib/python3.11/site-packages';
  assert.equal(resolveRecordPath(site, 'urllib3/__init__.py'), `${site}/urllib3/__init__.py`);
  assert.equal(resolveRecordPath(site, '../../../bin/normalizer'), 'usr/local/bin/normalizer');
  assert.equal(resolveRecordPath(site, '../../../../etc/passwd'), 'usr/etc/passwd');
  assert.equal(resolveRecordPath(site, '../../../../../../etc/passwd'), undefined, 'climbs above the root');
  assert.equal(resolveRecordPath(site, '/usr/local/bin/x'), 'usr/local/bin/x');
  assert.equal(resolveRecordPath(site, 'a\\..\\..\\x'), undefined);
});

test('scripts: pip\'s wrapper template, the sh trampoline shebang, versioned pip wrappers, #!python rewritten', () => {
  const wrapper = scriptWrapper('#!/opt/app/venv/bin/python\n', { name: 'normalizer', module: 'charset_normalizer.cli', attr: 'cli_detect' }).toString();
  assert.equal(wrapper, "#!/opt/app/venv/bin/python\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom charset_normalizer.cli import cli_detect\nif __name__ == '__main__':\n    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(cli_detect())\n");
  assert.match(scriptWrapper('#!/x', { name: 'a', module: 'm', attr: 'obj.run' }).toString(), /from m import obj\n[^]*sys\.exit\(obj\.run\(\)\)/);
  const trampoline = Buffer.from("#!/bin/sh\n'''exec' \"/opt/my app/bin/python\" \"$0\" \"$@\"\n' '''\n# -*- coding: utf-8 -*-\n");
  assert.deepEqual(shebangOf(trampoline), { shebang: "#!/bin/sh\n'''exec' \"/opt/my app/bin/python\" \"$0\" \"$@\"\n' '''\n", executable: '/opt/my app/bin/python' });
  assert.deepEqual(shebangOf(Buffer.from('#!/usr/bin/python3.11\nimport x\n')), { shebang: '#!/usr/bin/python3.11\n', executable: '/usr/bin/python3.11' });
  const eps = parseEntryPoints('[console_scripts]\npip = pip._internal.cli.main:main\npip3 = pip._internal.cli.main:main\npip3.12 = pip._internal.cli.main:main\n');
  assert.deepEqual([...scriptsToGenerate(eps, { major: 3, minor: 11 }, new Set()).keys()], ['pip', 'pip3', 'pip3.11']);
  assert.deepEqual([...scriptsToGenerate(eps, { major: 3, minor: 11 }, new Set(['pip3', 'pip3.11'])).keys()], ['pip3', 'pip3.11']);
  assert.equal(fixScriptShebang(Buffer.from('#!python\nprint(1)\n'), '/usr/bin/python3.11').toString(), '#!/usr/bin/python3.11\nprint(1)\n');
  assert.equal(fixScriptShebang(Buffer.from('#!/bin/sh\necho\n'), '/usr/bin/python3.11').toString(), '#!/bin/sh\necho\n');
  assert.throws(() => parseEntryPoints('[console_scripts]\nbad/name = m:f\n'), (e: unknown) => e instanceof PythonError && e.code === 'WHEEL_INVALID');
});

// --- A whole install ----------------------------------------------------------

/** A zip archive written here (deflated entries with Unix modes), so the test needs no zip tool. */
function zipBytes(entries: readonly { name: string; data: string | Buffer; mode?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = Buffer.from(e.data);
    const compressed = deflateRawSync(data);
    const name = Buffer.from(e.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc32(data), 14); local.writeUInt32LE(compressed.length, 18); local.writeUInt32LE(data.length, 22); local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0); central.writeUInt8(20, 4); central.writeUInt8(3, 5); central.writeUInt16LE(20, 6); central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc32(data), 16); central.writeUInt32LE(compressed.length, 20); central.writeUInt32LE(data.length, 24); central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((0o100000 | (e.mode ?? 0o644)) << 16) >>> 0, 38); central.writeUInt32LE(offset, 42);
    locals.push(local, name, compressed);
    centrals.push(central, name);
    offset += 30 + name.length + compressed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A wheel with a RECORD that matches its files (or, with `tamper`, does not). */
function wheelBytes(files: Record<string, string>, distInfo: string, tamper?: string): Buffer {
  const rows = Object.entries(files).map(([name, data]) => ({ path: name, hash: name === tamper ? 'sha256=AAAA' : sha256Record(Buffer.from(data)), size: Buffer.byteLength(data) }));
  rows.push({ path: `${distInfo}/RECORD` } as never);
  return zipBytes([...Object.entries(files).map(([name, data]) => ({ name, data, ...(name.includes('.data/scripts/') ? { mode: 0o755 } : {}) })), { name: `${distInfo}/RECORD`, data: formatRecord(rows) }]);
}

const site = 'usr/local/lib/python3.11/site-packages';
const oldRecordRows = (extra: string[] = []) => [
  'demo/__init__.py,sha256=a,1', 'demo/old.py,sha256=a,1', 'demo/gone/__init__.py,sha256=a,1', 'demo/gone/data.txt,sha256=a,1',
  'demo-1.0.dist-info/METADATA,sha256=a,1', 'demo-1.0.dist-info/INSTALLER,sha256=a,1', 'demo-1.0.dist-info/REQUESTED,sha256=a,0',
  'demo-1.0.dist-info/RECORD,,', '../../../bin/demo-cli,sha256=a,1', '../../../bin/demo-old-cli,sha256=a,1', ...extra,
].join('\r\n');

function oldEntries(record = oldRecordRows(), more: TarEntry[] = []): TarEntry[] {
  return [
    { path: 'usr/bin/python3.11', content: 'ELF', mode: 0o755 },
    { path: 'usr/local/bin/demo-cli', content: '#!/usr/bin/python3.11\n# old wrapper\n', mode: 0o755 },
    { path: 'usr/local/bin/demo-old-cli', content: '#!/usr/bin/python3.11\n# old wrapper\n', mode: 0o755 },
    { path: `${site}/demo/__init__.py`, content: 'old = 1\n' },
    { path: `${site}/demo/old.py`, content: 'x\n' },
    { path: `${site}/demo/user.txt`, content: 'not in RECORD: stays\n' },
    { path: `${site}/demo/__pycache__/__init__.cpython-311.pyc`, content: 'pyc' },
    { path: `${site}/demo/__pycache__/old.cpython-311.pyc`, content: 'pyc' },
    { path: `${site}/demo/gone/__init__.py`, content: '' },
    { path: `${site}/demo/gone/data.txt`, content: 'd' },
    { path: `${site}/demo-1.0.dist-info/METADATA`, content: 'Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n' },
    { path: `${site}/demo-1.0.dist-info/INSTALLER`, content: 'pip\n' },
    { path: `${site}/demo-1.0.dist-info/REQUESTED`, content: '' },
    { path: `${site}/demo-1.0.dist-info/RECORD`, content: record },
    ...more,
  ];
}

async function oldImage(record = oldRecordRows(), more: TarEntry[] = []): Promise<ImageFilesystem> {
  return ImageFilesystem.load([await layerFromEntries(oldEntries(record, more), 'old')]);
}

const newWheel = {
  'demo/__init__.py': 'new = 2\n',
  'demo/new.py': 'y\n',
  'demo-2.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: demo\nVersion: 2.0\nRequires-Python: >=3.8\n',
  'demo-2.0.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
  'demo-2.0.dist-info/entry_points.txt': '[console_scripts]\ndemo-cli = demo.cli:main\n',
  'demo-2.0.data/scripts/demo-tool': '#!python\nprint("tool")\n',
  'demo-2.0.data/data/share/demo/readme.txt': 'data\n',
};

const emptyInventory: Inventory = { packages: [], warnings: [] };

test('a wheel installed over the old install: old files, bytecode and emptied directories whited out, scripts regenerated, one RECORD for all', async () => {
  const fs = await oldImage();
  const place = await describePlace(fs, emptyInventory, site);
  assert.deepEqual({ prefix: place.prefix, interpreter: place.interpreter, version: place.version, pip: place.pip }, { prefix: 'usr/local', interpreter: '/usr/bin/python3.11', version: { major: 3, minor: 11 }, pip: false });
  const wheelPath = join(work, 'demo-2.0-py3-none-any.whl');
  await writeFile(wheelPath, wheelBytes(newWheel, 'demo-2.0.dist-info'));
  const wheel = await openWheel(wheelPath, 'demo-2.0-py3-none-any.whl', { name: 'demo', version: '2.0' });
  const builder = createLayerBuilder({ tmpDir: work });
  try {
    const old = await readOldInstall(fs, place, `${site}/demo-1.0.dist-info/METADATA`);
    assert.equal(old.requested, true);
    const result = await installWheel({ fs, builder, place, old, wheel });
    assert.deepEqual(result.scripts, ['usr/local/bin/demo-cli']);
    const whiteouts = builder.paths().filter((p) => builder.get(p)?.type === 'whiteout');
    assert.deepEqual(whiteouts, [
      'usr/local/bin/demo-old-cli',
      `${site}/demo-1.0.dist-info`,
      `${site}/demo/__pycache__`,
      `${site}/demo/gone`,
      `${site}/demo/old.py`,
    ]);

    const layer = await builder.write();
    const view = await ImageFilesystem.load([await layerFromEntries(oldEntries(), 'old'), layer]);
    assert.deepEqual(view.readdir(site), ['demo', 'demo-2.0.dist-info'], 'exactly one dist-info');
    assert.deepEqual(view.readdir(`${site}/demo`), ['__init__.py', 'new.py', 'user.txt']);
    assert.deepEqual(view.readdir(`${site}/demo-2.0.dist-info`), ['INSTALLER', 'METADATA', 'RECORD', 'REQUESTED', 'WHEEL', 'entry_points.txt']);
    assert.equal((await view.readFile('usr/local/bin/demo-tool'))?.toString(), '#!/usr/bin/python3.11\nprint("tool")\n');
    assert.equal(view.stat('usr/local/bin/demo-tool')?.mode, 0o755);
    assert.match((await view.readFile('usr/local/bin/demo-cli'))!.toString(), /^#!\/usr\/bin\/python3\.11\n# -\*- coding: utf-8 -\*-\n[^]*from demo\.cli import main\n/);
    assert.equal((await view.readFile('usr/local/share/demo/readme.txt'))?.toString(), 'data\n');
    assert.equal(view.lstat('usr/local/bin/demo-old-cli'), undefined);
    assert.equal((await view.readFile(`${site}/demo-2.0.dist-info/INSTALLER`))?.toString(), 'patchd\n');
    const record = (await view.readFile(`${site}/demo-2.0.dist-info/RECORD`))!.toString();
    const rows = parseRecord(record);
    assert.deepEqual(rows.map((r) => r.path), [
      '../../../bin/demo-cli', '../../../bin/demo-tool', '../../../share/demo/readme.txt',
      'demo-2.0.dist-info/INSTALLER', 'demo-2.0.dist-info/METADATA', 'demo-2.0.dist-info/RECORD', 'demo-2.0.dist-info/REQUESTED',
      'demo-2.0.dist-info/WHEEL', 'demo-2.0.dist-info/entry_points.txt', 'demo/__init__.py', 'demo/new.py',
    ]);
    assert.ok(record.endsWith('\r\n'));
    for (const row of rows.filter((r) => r.hash)) {
      const bytes = (await view.readFile(resolveRecordPath(site, row.path)!))!;
      assert.equal(row.hash, sha256Record(bytes), row.path);
      assert.equal(row.size, bytes.length, row.path);
    }
  } finally {
    await wheel.close();
    await builder.dispose();
  }
});

test('an old RECORD naming ../../../../etc/passwd (or anything outside its install scheme) is refused, and nothing is staged', async () => {
  const code = (c: string) => (e: unknown) => e instanceof PythonError && e.code === c;
  for (const evil of ['../../../../etc/passwd,,', '../../../../../../../etc/passwd,,', '/etc/shadow,,']) {
    const fs = await oldImage(oldRecordRows([evil]), [{ path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' }]);
    const place = await describePlace(fs, emptyInventory, site);
    await assert.rejects(readOldInstall(fs, place, `${site}/demo-1.0.dist-info/METADATA`), code('PATH_ESCAPE'), evil);
  }
  // A symlinked directory cannot smuggle a path out either: usr/local/bin -> /etc.
  const fs = await oldImage(oldRecordRows(['../../../bin/passwd,,']), [{ path: 'usr/local/bin', type: 'symlink', linkname: '/etc' }, { path: 'etc/passwd', content: 'root' }]);
  const place = await describePlace(fs, emptyInventory, site);
  await assert.rejects(readOldInstall(fs, place, `${site}/demo-1.0.dist-info/METADATA`), code('PATH_ESCAPE'));
});

test('a wheel whose files do not match its RECORD is refused before anything is staged', async () => {
  const fs = await oldImage();
  const place = await describePlace(fs, emptyInventory, site);
  const wheelPath = join(work, 'demo-2.0-tampered.whl');
  await writeFile(wheelPath, wheelBytes(newWheel, 'demo-2.0.dist-info', 'demo/new.py'));
  const wheel = await openWheel(wheelPath, 'demo-2.0-py3-none-any.whl', { name: 'demo', version: '2.0' });
  const builder = createLayerBuilder({ tmpDir: work });
  try {
    const old = await readOldInstall(fs, place, `${site}/demo-1.0.dist-info/METADATA`);
    await assert.rejects(installWheel({ fs, builder, place, old, wheel }), (e: unknown) => e instanceof PythonError && e.code === 'WHEEL_INVALID' && /demo\/new\.py/.test(e.message));
    assert.deepEqual(builder.paths(), []);
  } finally {
    await wheel.close();
    await builder.dispose();
  }
  // And a wheel for another project, or with two dist-info directories, is not opened at all.
  await writeFile(wheelPath, wheelBytes(newWheel, 'demo-2.0.dist-info'));
  await assert.rejects(openWheel(wheelPath, 'x.whl', { name: 'other', version: '2.0' }), (e: unknown) => e instanceof PythonError && e.code === 'WHEEL_INVALID');
  await assert.rejects(openWheel(wheelPath, 'x.whl', { name: 'demo', version: '3.0' }), (e: unknown) => e instanceof PythonError && e.code === 'WHEEL_INVALID');
});

test('the interpreter of a venv and the C library of the image come from the image\'s files', async () => {
  const venvSite = 'opt/app/venv/lib/python3.12/site-packages';
  const fs = await ImageFilesystem.load([await layerFromEntries([
    { path: 'opt/app/venv/pyvenv.cfg', content: 'home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.12.4\n' },
    { path: 'opt/app/venv/bin/python', type: 'symlink', linkname: '/usr/local/bin/python3.12' },
    { path: `${venvSite}/pip/__init__.py`, content: '' },
    { path: 'usr/local/bin/python3.12', content: 'ELF', mode: 0o755 },
    { path: 'lib/x86_64-linux-gnu/libc.so.6', content: 'junk GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n junk' },
  ], 'venv')]);
  const place = await describePlace(fs, emptyInventory, venvSite);
  assert.deepEqual({ venv: place.venv?.root, interpreter: place.interpreter, version: place.version, pip: place.pip, externallyManaged: place.externallyManaged },
    { venv: 'opt/app/venv', interpreter: '/opt/app/venv/bin/python', version: { major: 3, minor: 12, micro: 4 }, pip: true, externallyManaged: false });
  assert.deepEqual(await imageLibc(fs, emptyInventory), { family: 'glibc', major: 2, minor: 36 });
  const inventory: Inventory = { packages: [{ ecosystem: 'alpine', class: 'os', name: 'musl', version: '1.2.4-r2', purl: 'pkg:apk/alpine/musl@1.2.4-r2', path: 'lib/apk/db/installed' }], warnings: [] };
  assert.deepEqual(await imageLibc(fs, inventory), { family: 'musl', major: 1, minor: 2 });
});

test('the index client: per-version JSON, the project JSON when a mirror lacks it (relative file URLs), PEP 691 simple pages, verified downloads', async () => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  const pypi = agent.get('https://pypi.example');
  const project = await readFile(join(fixtures, 'urllib3-1.26.19.json'), 'utf8');
  pypi.intercept({ path: '/pypi/urllib3/1.26.19/json' }).reply(404, '');
  pypi.intercept({ path: '/pypi/urllib3/json' }).reply(200, project);
  const release = await releaseFiles({ url: 'https://pypi.example/pypi' }, 'urllib3', '1.26.19', agent);
  assert.equal(release.files.length, 2);
  const whl = release.files.find((f) => f.filename.endsWith('.whl'))!;
  assert.match(whl.url, /^https:\/\/pypi\.example\/packages\/packages\/[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{60}\/urllib3-1\.26\.19-py2\.py3-none-any\.whl$/);
  assert.equal(whl.sha256, '37a0344459b199fce0e80b0d3569837ec6b6937435c5244e7fd73fa6006830f3');

  pypi.intercept({ path: '/pypi/urllib3/9.9.9/json' }).reply(404, '');
  pypi.intercept({ path: '/pypi/urllib3/json' }).reply(200, project);
  await assert.rejects(releaseFiles({ url: 'https://pypi.example/pypi' }, 'urllib3', '9.9.9', agent), (e: unknown) => e instanceof PythonError && e.code === 'VERSION_NOT_PUBLISHED');
  pypi.intercept({ path: '/pypi/urllib3/1.26.19/json' }).reply(503, '');
  await assert.rejects(releaseFiles({ url: 'https://pypi.example/pypi' }, 'urllib3', '1.26.19', agent), (e: unknown) => e instanceof PythonError && e.code === 'INDEX_UNREACHABLE' && e.transient);

  const priv = agent.get('https://private.example');
  priv.intercept({ path: '/simple/urllib3/', headers: { accept: 'application/vnd.pypi.simple.v1+json', authorization: `Basic ${Buffer.from('u:p').toString('base64')}` } }).reply(200, JSON.stringify({
    meta: { 'api-version': '1.1' }, name: 'urllib3',
    files: [
      { filename: 'urllib3-1.26.19-py2.py3-none-any.whl', url: '../../files/urllib3-1.26.19-py2.py3-none-any.whl', hashes: { sha256: 'ab'.repeat(32) }, 'requires-python': '>=2.7', yanked: false },
      { filename: 'urllib3-1.26.18-py2.py3-none-any.whl', url: '../../files/urllib3-1.26.18-py2.py3-none-any.whl', hashes: { sha256: 'cd'.repeat(32) } },
    ],
  }));
  const index = { url: 'https://private.example/simple', credentials: { username: 'u', password: 'p' } };
  const simple = await releaseFiles(index, 'urllib3', '1.26.19', agent);
  assert.deepEqual(simple.files.map((f) => [f.filename, f.url, f.requiresPython]), [['urllib3-1.26.19-py2.py3-none-any.whl', 'https://private.example/files/urllib3-1.26.19-py2.py3-none-any.whl', '>=2.7']]);
  assert.equal(simpleIndexUrl({ url: 'https://pypi.org/pypi' }), 'https://pypi.org/simple/');
  assert.equal(simpleIndexUrl(index), 'https://private.example/simple/');

  // Downloads: streamed to disk, sha256 checked; credentials only for the index's own origin.
  const body = Buffer.from('wheel bytes');
  const digest = createHash('sha256').update(body).digest('hex');
  priv.intercept({ path: '/files/a.whl', headers: { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` } }).reply(200, body);
  const dest = join(work, 'a.whl');
  assert.equal(await downloadVerified(index, { filename: 'a.whl', url: 'https://private.example/files/a.whl', sha256: digest, yanked: false }, dest, agent), body.length);
  assert.deepEqual(await readFile(dest), body);
  const cdn = agent.get('https://files.example');
  cdn.intercept({ path: '/a.whl', headers: (h: Record<string, string>) => !('authorization' in h) }).reply(200, body);
  await assert.rejects(downloadVerified(index, { filename: 'a.whl', url: 'https://files.example/a.whl', sha256: 'ff'.repeat(32), yanked: false }, dest, agent), (e: unknown) => e instanceof PythonError && e.code === 'DIGEST_MISMATCH');
  await assert.rejects(downloadVerified(index, { filename: 'a.whl', url: 'https://files.example/a.whl', yanked: false }, dest, agent), (e: unknown) => e instanceof PythonError && e.code === 'INDEX_INVALID');
  await agent.close();
});

test('the BuildKit pip step: the image\'s interpreter, exact pins, no deps/bytecode/cache, /tmp a tmpfs, credentials only in a read-only netrc mount; unsafe values refused', () => {
  const base = image('registry.example/app@sha256:' + 'a'.repeat(64), { platform: { architecture: 'arm64', os: 'linux' } });
  const execOf = (state: ReturnType<typeof pipInstall>) => state.node.body as Extract<OpBody, { kind: 'exec' }>;
  const plain = execOf(pipInstall(base, [{ interpreter: '/opt/app/venv/bin/python', requirements: [{ name: 'future', version: '0.18.3' }] }], { url: 'https://pypi.org/simple/' }));
  assert.deepEqual(plain.args, ['/opt/app/venv/bin/python', '-m', 'pip', 'install', '--no-deps', '--no-compile', '--no-cache-dir', '--disable-pip-version-check', '--no-input', '--index-url', 'https://pypi.org/simple/', 'future==0.18.3']);
  assert.ok(plain.env.includes('PYTHONDONTWRITEBYTECODE=1'));
  assert.deepEqual(plain.mounts.map((m) => [m.dest, m.kind]), [['/', 'bind'], ['/tmp', 'tmpfs']]);

  const system = pipInstall(base, [{ interpreter: '/usr/bin/python3.11', breakSystemPackages: true, requirements: [{ name: 'PyYAML', version: '6.0' }] }], { url: 'https://pypi.internal/simple/', credentials: { login: 'ci', password: 's3cret' } });
  const run = execOf(system);
  assert.deepEqual(run.args.slice(-2), ['--break-system-packages', 'PyYAML==6.0']);
  assert.ok(!run.args.join(' ').includes('s3cret') && !run.env.join(' ').includes('s3cret'), 'the secret is neither an argument nor in the environment');
  assert.ok(run.env.includes('NETRC=/tmp/patchd-pip/netrc'));
  const auth = run.mounts.find((m) => m.dest === '/tmp/patchd-pip');
  assert.ok(auth && auth.kind === 'bind' && auth.readonly === true);
  const netrc = system.node.inputs.map((i) => i.node.body).find((b): b is Extract<OpBody, { kind: 'mkfile' }> => b.kind === 'mkfile');
  assert.equal(netrc?.data.toString(), 'machine pypi.internal login ci password s3cret\n');

  const refused = (f: () => unknown) => assert.throws(f, (e: unknown) => (e as { code?: string }).code === 'BUILD_REQUEST_INVALID');
  refused(() => pipInstall(base, [{ interpreter: '/usr/bin/python3', requirements: [{ name: 'x; rm -rf /', version: '1' }] }], { url: 'https://pypi.org/simple/' }));
  refused(() => pipInstall(base, [{ interpreter: '/usr/bin/python3', requirements: [{ name: 'x', version: '1 --index-url=http://evil' }] }], { url: 'https://pypi.org/simple/' }));
  refused(() => pipInstall(base, [{ interpreter: '/usr/../bin/sh', requirements: [{ name: 'x', version: '1' }] }], { url: 'https://pypi.org/simple/' }));
  refused(() => pipInstall(base, [{ interpreter: '/usr/bin/python3', requirements: [{ name: 'x', version: '1' }] }], { url: 'https://user:pw@pypi.org/simple/' }));
  refused(() => pipInstall(base, [{ interpreter: '/usr/bin/python3', requirements: [{ name: 'x', version: '1' }] }], { url: 'file:///etc/' }));
});

test('the executor: a fitting wheel installed in-process, a source-only release deferred to pip (or failed without pip), a Requires-Python miss failed', async () => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  const idx = agent.get('https://idx.example');
  const wheel = wheelBytes(newWheel, 'demo-2.0.dist-info');
  const sha = createHash('sha256').update(wheel).digest('hex');
  const release = (version: string, files: object[]) => JSON.stringify({ info: { name: 'demo', version }, urls: files });
  idx.intercept({ path: '/pypi/demo/2.0/json' }).reply(200, release('2.0', [{ filename: 'demo-2.0-py3-none-any.whl', url: '../../../files/demo-2.0-py3-none-any.whl', digests: { sha256: sha }, requires_python: '>=3.8', yanked: false }]));
  idx.intercept({ path: '/files/demo-2.0-py3-none-any.whl' }).reply(200, wheel);
  idx.intercept({ path: '/pypi/demo/3.0/json' }).reply(200, release('3.0', [{ filename: 'demo-3.0.tar.gz', url: '/files/demo-3.0.tar.gz', digests: { sha256: 'ab'.repeat(32) }, requires_python: '>=3.8', yanked: false }]));
  idx.intercept({ path: '/pypi/demo/4.0/json' }).reply(200, release('4.0', [{ filename: 'demo-4.0-py3-none-any.whl', url: '/files/demo-4.0-py3-none-any.whl', digests: { sha256: 'cd'.repeat(32) }, requires_python: '>=3.12', yanked: false }]));
  const library = (to: string): PlannedLibrary => ({ ecosystem: 'pypi', name: 'demo', from: '1.0', to, path: `${site}/demo-1.0.dist-info/METADATA`, location: site, reasons: ['TEST-1'], executor: 'buildkit' });
  const fs = await oldImage();
  const builder = createLayerBuilder({ tmpDir: work });
  const ctx = {
    base: fs, inventory: emptyInventory, builder, platform: { os: 'linux', architecture: 'arm64' },
    indexes: { pypi: { url: 'https://idx.example/pypi' }, npm: { url: 'x' }, goProxy: { url: 'x' }, nuget: { url: 'x' } },
    dispatcher: agent, tmpDir: work, logger: silentLogger(),
  };
  try {
    const result = await pythonExecutor.installInProcess(ctx, [library('2.0'), library('3.0'), library('4.0')]);
    assert.deepEqual(result.applied.map((l) => l.to), ['2.0']);
    assert.ok(result.bytesDownloaded >= wheel.length);
    assert.ok(builder.has(`${site}/demo-2.0.dist-info/RECORD`));
    assert.deepEqual(result.deferred, []);
    const failures = Object.fromEntries(result.failed.map((f) => [f.library.to, f.error as PythonError]));
    // The image has no pip for /usr/bin/python3.11: a source-only release cannot be built there.
    assert.equal(failures['3.0']?.code, 'PIP_MISSING');
    assert.match(failures['3.0']!.message, /^no wheel of demo 3\.0 fits Python 3\.11 on manylinux_2_\d+_aarch64|^no wheel of demo 3\.0 fits Python 3\.11 on linux_aarch64 \(C library not identified\)/);
    assert.match(failures['3.0']!.message, /the image has no pip for \/usr\/bin\/python3\.11$/);
    assert.equal(failures['4.0']?.code, 'REQUIRES_PYTHON');
    assert.equal(failures['4.0']!.message, "demo 4.0 requires Python >=3.12, but the image's interpreter for /usr/local/lib/python3.11/site-packages (/usr/bin/python3.11) is Python 3.11");

    // pip exists, but /usr/bin/python3.11 does not install into /usr/local/lib/python3.11/site-packages: not pointed there by force.
    const elsewhere = await oldImage(oldRecordRows(), [{ path: 'usr/lib/python3/dist-packages/pip/__init__.py', content: '' }]);
    idx.intercept({ path: '/pypi/demo/3.0/json' }).reply(200, release('3.0', [{ filename: 'demo-3.0.tar.gz', url: '/files/demo-3.0.tar.gz', digests: { sha256: 'ab'.repeat(32) }, requires_python: '>=3.8', yanked: false }]));
    const refused = await pythonExecutor.installInProcess({ ...ctx, base: elsewhere }, [library('3.0')]);
    assert.equal((refused.failed[0]?.error as PythonError | undefined)?.code, 'INSTALL_UNSUPPORTED');
    assert.match(refused.failed[0]!.error.message, /pip of \/usr\/bin\/python3\.11 does not install into \/usr\/local\/lib\/python3\.11\/site-packages by default/);

    // The interpreter of that prefix, with pip: the source-only release is deferred to BuildKit, run by that interpreter.
    const withPip = await oldImage(oldRecordRows(), [
      { path: 'usr/local/bin/python3.11', content: 'ELF', mode: 0o755 },
      { path: `${site}/pip/__init__.py`, content: '' },
      { path: 'usr/local/lib/python3.11/EXTERNALLY-MANAGED', content: '[externally-managed]\n' },
    ]);
    idx.intercept({ path: '/pypi/demo/3.0/json' }).reply(200, release('3.0', [{ filename: 'demo-3.0.tar.gz', url: '/files/demo-3.0.tar.gz', digests: { sha256: 'ab'.repeat(32) }, requires_python: '>=3.8', yanked: false }]));
    const deferredRun = await pythonExecutor.installInProcess({ ...ctx, base: withPip }, [library('3.0')]);
    assert.equal(deferredRun.deferred.length, 1, JSON.stringify(deferredRun.failed.map((f) => f.error.message)));
    assert.match(deferredRun.deferred[0]!.why, /the index has only source distributions\): pip must build it in the image$/);
    const state = pythonExecutor.buildkitSteps!(image('registry.example/app@sha256:' + 'a'.repeat(64), { platform: { architecture: 'arm64', os: 'linux' } }), [deferredRun.deferred[0]!.library], { ...ctx, base: withPip });
    const run = state.node.body as Extract<OpBody, { kind: 'exec' }>;
    assert.deepEqual([run.args[0], ...run.args.slice(-4)], ['/usr/local/bin/python3.11', '--index-url', 'https://idx.example/simple/', '--break-system-packages', 'demo==3.0']);
  } finally {
    await builder.dispose();
    await agent.close();
  }
});

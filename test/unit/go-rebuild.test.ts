import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GoError } from '../../src/executors/go/errors.js';
import { buildArguments, toolchainForStdlib, toolchainOf, unquoteGo } from '../../src/executors/go/build-settings.js';
import { checkImagePath, checkModule, checkSum, escapeModulePath, isPackagePath, proxyUrl } from '../../src/executors/go/module-path.js';
import { image, scratchFile } from '../../src/executors/buildkit/llb.js';
import { goSteps, type GoRebuild } from '../../src/executors/buildkit/strategies/go.js';
import { BuildkitError } from '../../src/executors/buildkit/errors.js';
import { parseModInfo } from '../../src/scan/inventory/readers/go-buildinfo.js';

// `go version -m` of `go install github.com/nicksnyder/go-i18n/v2/goi18n@v2.1.2`
// (Go 1.26.8), as runtime/debug.BuildInfo.String() writes it, plus the settings
// a release build with flags carries (quoted the way strconv.Quote quotes them).
const modinfo = [
  'path\tgithub.com/nicksnyder/go-i18n/v2/goi18n',
  'mod\tgithub.com/nicksnyder/go-i18n/v2\tv2.1.2\th1:QHYxcUJnGHBaq7XbvgunmZ2Pn0focXFqTD61CkH146c=',
  'dep\tgithub.com/BurntSushi/toml\tv0.3.1\th1:WXkYYl6Yr3qBf1K79EBnL4mak0OimBfB0XUf9Vl28OQ=',
  'dep\tgolang.org/x/text\tv0.3.3\th1:cokOdA+Jmi5PJGXLlLllQSgYigAEfHXJAERHVMaCc2k=',
  'dep\tgopkg.in/yaml.v2\tv2.3.0',
  '=>\tgopkg.in/yaml.v2\tv2.4.0\th1:D8xgwECY7CYvx+Y2n4sBz93Jn9JRvxdiyyo8CTfuKaY=',
  'build\t-buildmode=exe',
  'build\t-compiler=gc',
  'build\t-ldflags="-s -w -X \\"main.version=v2.1.2\\""',
  'build\t-tags=netgo,osusergo',
  'build\t-trimpath=true',
  'build\tDefaultGODEBUG=asynctimerchan=1,panicnil=1',
  'build\tCGO_ENABLED=0',
  'build\tGOARCH=arm',
  'build\tGOOS=linux',
  'build\tGOARM=7',
  'build\tvcs=git',
  'build\tvcs.revision=0123456789abcdef0123456789abcdef01234567',
  '',
].join('\n');

test('the reader keeps the h1: sums build info records for the main module and its dependencies (replacements too)', () => {
  const info = parseModInfo('go1.26.8', modinfo);
  assert.deepEqual(info.main, { path: 'github.com/nicksnyder/go-i18n/v2', version: 'v2.1.2', sum: 'h1:QHYxcUJnGHBaq7XbvgunmZ2Pn0focXFqTD61CkH146c=' });
  assert.deepEqual(info.deps.find((d) => d.path === 'golang.org/x/text'), { path: 'golang.org/x/text', version: 'v0.3.3', sum: 'h1:cokOdA+Jmi5PJGXLlLllQSgYigAEfHXJAERHVMaCc2k=' });
  assert.deepEqual(info.deps.find((d) => d.path === 'gopkg.in/yaml.v2'), { path: 'gopkg.in/yaml.v2', version: 'v2.4.0', sum: 'h1:D8xgwECY7CYvx+Y2n4sBz93Jn9JRvxdiyyo8CTfuKaY=' });
  // A plain `go build` writes no sum for its main module: nothing to check a proxy zip against.
  assert.equal(parseModInfo('go1.26.8', 'path\texample.com/x\nmod\texample.com/x\t(devel)\t\n').main?.sum, undefined);
});

test('build settings become go build arguments: flags as single argv elements, the target as environment', () => {
  const args = buildArguments(parseModInfo('go1.26.8', modinfo).settings);
  assert.deepEqual(args.flags, ['-buildmode=exe', '-ldflags=-s -w -X "main.version=v2.1.2"', '-tags=netgo,osusergo', '-trimpath']);
  assert.deepEqual(args.env, ['CGO_ENABLED=0', 'GOARCH=arm', 'GOARM=7', 'GOOS=linux']);
  assert.deepEqual([...args.ignored].sort(), ['-compiler', 'DefaultGODEBUG', 'vcs', 'vcs.revision']);
  // Without a CGO_ENABLED record the build had no cgo.
  assert.deepEqual(buildArguments(new Map([['GOOS', 'linux']])).env, ['GOOS=linux', 'CGO_ENABLED=0']);
  assert.deepEqual(buildArguments(new Map([['-race', 'true'], ['CGO_ENABLED', '1'], ['CGO_CFLAGS', '"-O2 -g"']])), { flags: ['-race'], env: ['CGO_CFLAGS=-O2 -g', 'CGO_ENABLED=1'], ignored: [] });
});

test('builds patchd cannot reproduce, and unsafe values, are refused with typed errors', () => {
  const refused = (settings: [string, string][], code: string, message?: RegExp) =>
    assert.throws(() => buildArguments(new Map(settings)), (e: unknown) => e instanceof GoError && e.code === code && (!message || message.test(e.message)));
  refused([['-compiler', 'gccgo']], 'GO_BUILD_UNSUPPORTED', /gc toolchain only/);
  refused([['-buildmode', 'c-shared']], 'GO_BUILD_UNSUPPORTED', /not an executable/);
  refused([['-buildmode', 'plugin']], 'GO_BUILD_UNSUPPORTED');
  refused([['-toolexec', '/bin/evil']], 'GO_BUILD_UNSUPPORTED', /does not know how to reproduce/);
  refused([['-ldflags', '"-linkmode=external -extld=/tmp/x"']], 'GO_BUILD_UNSUPPORTED', /external program/);
  refused([['-tags', '"a b"']], 'GO_REQUEST_INVALID');
  refused([['-tags', 'a;rm']], 'GO_REQUEST_INVALID');
  refused([['GOOS', 'linux$(id)']], 'GO_REQUEST_INVALID');
  refused([['CGO_ENABLED', 'yes']], 'GO_REQUEST_INVALID');
  refused([['-trimpath', 'maybe']], 'GO_REQUEST_INVALID');
  refused([['-ldflags', '"-X main.v=1\\nrm -rf /"']], 'GO_REQUEST_INVALID', /line break/);
  refused([['GOFLAGS', '-mod=vendor']], 'GO_BUILD_UNSUPPORTED');
});

test("Go's quoting is undone exactly (strconv.Quote's escapes)", () => {
  assert.equal(unquoteGo('"-s -w"'), '-s -w');
  assert.equal(unquoteGo('"a\\"b\\\\c\\td\\x41\\u00e9\\101"'), 'a"b\\c\tdAéA');
  assert.equal(unquoteGo('plain'), 'plain');
  assert.throws(() => unquoteGo('"bad\\q"'), GoError);
});

test('toolchains: the recorded release, or the stdlib version the plan chose; nothing else', () => {
  assert.equal(toolchainOf('go1.22.5'), 'go1.22.5');
  assert.equal(toolchainOf('go1.21rc2'), 'go1.21rc2');
  assert.equal(toolchainForStdlib('v1.23.10'), 'go1.23.10');
  for (const bad of ['devel go1.23-abcdef', 'go1.22.5 X:boringcrypto', 'go1.22.5;id', '']) assert.throws(() => toolchainOf(bad), (e: unknown) => e instanceof GoError && e.code === 'GO_BUILD_UNSUPPORTED');
});

test('module paths are case-escaped for the proxy; unsafe paths, versions and sums are refused', () => {
  assert.equal(escapeModulePath('github.com/BurntSushi/toml'), 'github.com/!burnt!sushi/toml');
  assert.equal(proxyUrl('https://proxy.golang.org/', 'github.com/Azure/Go-AutoRest', 'v1.0.0-RC1', 'zip'), 'https://proxy.golang.org/github.com/!azure/!go-!auto!rest/@v/v1.0.0-!r!c1.zip');
  assert.equal(checkModule('golang.org/x/text', 'v0.0.0-20170915032832-14c0d48ead0c'), 'golang.org/x/text@v0.0.0-20170915032832-14c0d48ead0c');
  assert.equal(checkModule('github.com/docker/docker', 'v20.10.7+incompatible'), 'github.com/docker/docker@v20.10.7+incompatible');
  const invalid = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof GoError && e.code === 'GO_REQUEST_INVALID');
  for (const path of ['-x.com/a', 'golang.org/../etc', 'golang.org/x/.hidden', 'nodot/module', 'golang.org/x/text ', 'a.com/b;c', 'a.com//b', 'a.com/b/']) invalid(() => checkModule(path, 'v1.0.0'));
  for (const version of ['1.0.0', 'v1.0', 'v1.0.0 --help', 'v1.0.0+dirty', 'latest', 'v01.0.0', 'v1.0.0-']) invalid(() => checkModule('golang.org/x/text', version));
  invalid(() => checkSum('h1:short=', 'm'));
  invalid(() => checkSum('h2:QHYxcUJnGHBaq7XbvgunmZ2Pn0focXFqTD61CkH146c=', 'm'));
  assert.ok(isPackagePath('github.com/nicksnyder/go-i18n/v2/goi18n'));
  assert.ok(!isPackagePath('-toolexec=/bin/sh'));
  assert.equal(checkImagePath('usr/local/bin/goi18n', 'binary'), 'usr/local/bin/goi18n');
  for (const path of ['../etc/passwd', 'usr/../../etc', '/abs', 'a//b', 'a/b\nc', '']) invalid(() => checkImagePath(path, 'binary'));
});

test('LLB: every go get and every rebuild in ONE exec of the tooling image (one layer), the target at /target, the tasks as tab-separated argv', () => {
  const target = scratchFile('/app/go.mod', 'module example.com/app\n');
  const tooling = image('registry.local/tooling/go:1', { platform: { os: 'linux', architecture: 'amd64' } });
  const env = { proxy: 'https://proxy.golang.org', modToolchain: 'local' as const };
  const rebuild: GoRebuild = {
    path: 'usr/local/bin/goi18n', module: 'github.com/nicksnyder/go-i18n/v2', version: 'v2.1.2', sum: 'h1:QHYxcUJnGHBaq7XbvgunmZ2Pn0focXFqTD61CkH146c=',
    package: 'github.com/nicksnyder/go-i18n/v2/goi18n', toolchain: 'go1.26.8', flags: ['-buildmode=exe', '-ldflags=-s -w', '-trimpath'], env: ['CGO_ENABLED=0', 'CGO_CFLAGS=-O2 -g', 'GOOS=linux'], requirements: ['golang.org/x/text@v0.3.8'],
  };
  const work = { updates: [{ root: 'app', requirements: ['golang.org/x/text@v0.3.8'] }, { root: 'opt/vendored', requirements: ['golang.org/x/text@v0.3.8', 'golang.org/x/net@v0.7.0'] }], rebuilds: [rebuild, { ...rebuild, path: 'usr/bin/other', requirements: [], env: [] }] };
  const state = goSteps(target, tooling, work, env);
  const exec = state.node.body;
  assert.equal(exec.kind, 'exec');
  if (exec.kind !== 'exec') return;
  assert.deepEqual(exec.args, ['/usr/local/bin/patchd-go-tasks', '/usr/local/share/patchd-go.tasks']);
  for (const e of ['GOPROXY=https://proxy.golang.org', 'GOFLAGS=-mod=mod', 'GOTOOLCHAIN=local', 'GOMODCACHE=/var/cache/patchd-go/mod', 'GOCACHE=/var/cache/patchd-go/build', 'GOENV=off']) assert.ok(exec.env.includes(e), e);
  assert.ok(exec.mounts.some((m) => m.kind === 'cache' && m.dest === '/var/cache/patchd-go'), 'module and build caches in a cache mount');
  assert.ok(exec.mounts.some((m) => m.kind === 'bind' && m.dest === '/target' && m.output >= 0), 'the target is a writable mount');
  assert.equal(state.node.inputs.filter((i) => i.node.body.kind === 'exec').length, 0, 'no other exec runs before it');
  const tasksFile = state.node.inputs[0]!.node.body;
  assert.ok(tasksFile.kind === 'mkfile' && tasksFile.path === '/usr/local/share/patchd-go.tasks');
  if (tasksFile.kind !== 'mkfile') return;
  assert.deepEqual(tasksFile.data.toString('utf8').split('\n').map((l) => l.split('\t')), [
    ['/usr/local/bin/patchd-go-mod-update', 'app', 'golang.org/x/text@v0.3.8'],
    ['/usr/local/bin/patchd-go-mod-update', 'opt/vendored', 'golang.org/x/text@v0.3.8', 'golang.org/x/net@v0.7.0'],
    ['/usr/local/bin/patchd-go-rebuild', 'usr/local/bin/goi18n', rebuild.module, 'v2.1.2', rebuild.sum, rebuild.package, 'go1.26.8', 'golang.org/x/text@v0.3.8', '3', 'CGO_ENABLED=0', 'CGO_CFLAGS=-O2 -g', 'GOOS=linux', '-buildmode=exe', '-ldflags=-s -w', '-trimpath'],
    ['/usr/local/bin/patchd-go-rebuild', 'usr/bin/other', rebuild.module, 'v2.1.2', rebuild.sum, rebuild.package, 'go1.26.8', '-', '0', '-buildmode=exe', '-ldflags=-s -w', '-trimpath'],
    [''],
  ]);
  assert.equal(goSteps(target, tooling, { updates: [], rebuilds: [] }, env), target, 'nothing to do: no step');

  const refused = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof BuildkitError && e.code === 'BUILD_REQUEST_INVALID');
  const one = (u: { root: string; requirements: string[] }) => ({ updates: [u], rebuilds: [] });
  refused(() => goSteps(target, tooling, one({ root: 'app', requirements: ['golang.org/x/text@v0.3.8 -x'] }), env));
  refused(() => goSteps(target, tooling, one({ root: 'app', requirements: ['-modfile=/etc/passwd@v1'] }), env));
  refused(() => goSteps(target, tooling, one({ root: 'a\tb', requirements: ['golang.org/x/text@v0.3.8'] }), env));
  refused(() => goSteps(target, tooling, one({ root: 'app', requirements: ['golang.org/x/text@v0.3.8'] }), { ...env, proxy: 'https://proxy.golang.org,direct' }));
  refused(() => goSteps(target, tooling, { updates: [], rebuilds: [{ ...rebuild, env: ['GOFLAGS=-toolexec=/bin/sh'] }] }, env));
  refused(() => goSteps(target, tooling, { updates: [], rebuilds: [{ ...rebuild, flags: ['x'] }] }, env));
  refused(() => goSteps(target, tooling, { updates: [], rebuilds: [{ ...rebuild, flags: ['-ldflags=-X a=b\tc'] }] }, env));
  refused(() => goSteps(target, tooling, { updates: [], rebuilds: [{ ...rebuild, toolchain: 'local' }] }, env));
});

test('plan: a binary is rebuilt only from a released main module with its zip sum; stdlib moves within --toolchain-patch-level', async () => {
  const { goRebuildBlocker, planGoToolchains } = await import('../../src/plan/go-toolchain.js');
  const base = { ecosystem: 'go', class: 'library', purl: 'pkg:golang/x', path: 'usr/local/bin/tool', location: 'usr/local/bin/tool', goOrigin: 'binary' } as const;
  const released = { ...base, name: 'golang.org/x/text', version: 'v0.3.3', goBinary: { mainModule: 'github.com/nicksnyder/go-i18n/v2', goVersion: 'go1.22.5', mainVersion: 'v2.1.2', mainSum: 'h1:QHYxcUJnGHBaq7XbvgunmZ2Pn0focXFqTD61CkH146c=' } };
  const checkout = { ...base, name: 'golang.org/x/text', version: 'v0.3.6', goBinary: { mainModule: 'example.com/hello', goVersion: 'go1.26.8', mainVersion: 'v0.0.0-20261128074854-2e194d93324f+dirty', vcsRevision: '2e194d9', vcsModified: true } };
  const devel = { ...base, name: 'golang.org/x/text', version: 'v0.3.6', goBinary: { mainModule: 'example.com/hello', goVersion: 'go1.26.8', mainVersion: '(devel)' } };
  assert.equal(goRebuildBlocker(released), undefined);
  assert.match(goRebuildBlocker(checkout)!, /^compiled into usr\/local\/bin\/tool, which cannot be rebuilt .*example\.com\/hello v0\.0\.0-20261128074854-2e194d93324f\+dirty, a VCS checkout at revision 2e194d9 with local changes/);
  assert.match(goRebuildBlocker(devel)!, /built from example\.com\/hello \(devel\), which the module proxy does not serve/);

  const stdlib = (goBinary: typeof released.goBinary | typeof devel.goBinary, version: string, path: string = base.path) => ({ ...base, path, location: path, name: 'stdlib', version, goBinary });
  const finding = (pkg: ReturnType<typeof stdlib>, id: string, fixed: string[]) => ({ id, package: pkg, fixedVersions: fixed, source: 'osv' }) as unknown as import('../../src/scan/types.js').Finding;
  const toolchains = ['v0.0.1-go1.21.0.linux-amd64', 'v0.0.1-go1.22.5.linux-amd64', 'v0.0.1-go1.22.7.linux-arm64', 'v0.0.1-go1.22.12.linux-amd64', 'v0.0.1-go1.23.0.linux-amd64', 'v0.0.1-go1.23.4.linux-amd64', 'v0.0.1-go1.24rc1.linux-amd64'];
  const index = { versions: async (_e: string, name: string) => { assert.equal(name, 'golang.org/toolchain'); return { versions: toolchains, source: 'proxy' }; } };
  const go1225 = stdlib(released.goBinary, 'v1.22.5');
  const findings = [
    finding(go1225, 'GO-2024-3107', ['1.22.7', '1.23.1']),
    finding(go1225, 'GO-2025-0001', ['1.23.2']),
    finding(stdlib(devel.goBinary, 'v1.26.8', 'usr/bin/hello'), 'GO-2026-0002', ['1.26.9']),
  ];
  const planned = { upgrades: [], skipped: findings.map((f) => ({ ecosystem: 'go' as const, name: 'stdlib', version: f.package.version, path: f.package.path, reason: 'compiled in', findings: [f.id] })) };
  const patch = await planGoToolchains({ findings, level: 'patch', index, planned });
  assert.deepEqual(patch.upgrades.map((u) => [u.name, u.from, u.to, u.path, u.reasons]), [['stdlib', 'v1.22.5', 'v1.22.12', 'usr/local/bin/tool', ['GO-2024-3107']]]);
  const reasons = Object.fromEntries(patch.skipped.map((s) => [`${s.path} ${s.findings.join(',')}`, s.reason]));
  assert.match(reasons['usr/local/bin/tool GO-2025-0001']!, /needs Go 1\.23\.2, beyond Go 1\.22\.12, the newest release --toolchain-patch-level patch allows/);
  assert.match(reasons['usr/bin/hello GO-2026-0002']!, /^Go standard library v1\.26\.8 is compiled into usr\/bin\/hello, which cannot be rebuilt/);
  assert.ok(!patch.skipped.some((s) => s.reason === 'compiled in'), 'the plain stdlib skips are replaced');
  const minor = await planGoToolchains({ findings, level: 'minor', index, planned });
  assert.deepEqual(minor.upgrades.map((u) => [u.to, u.reasons]), [['v1.23.4', ['GO-2024-3107', 'GO-2025-0001']]]);
});

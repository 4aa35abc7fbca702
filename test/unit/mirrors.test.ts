import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Agent, MockAgent } from 'undici';
import { indexesFromFlags, mirrorsFromFlags } from '../../src/cli/mirrors.js';
import { ConfigError, loadConfig, mirrorsForRegistry } from '../../src/config.js';
import { fetchWithRetries } from '../../src/distro/deb/repository/http.js';
import { mirroredSourcesFile, mirroredUri } from '../../src/distro/deb/repository/mirrors.js';
import { parseDeb822Sources } from '../../src/distro/deb/repository/sources.js';
import { planRepoMirrors, readRpmRepos, repoDirs } from '../../src/distro/rpm/repos.js';
import { image, type LlbState } from '../../src/executors/buildkit/llb.js';
import { aptInstall } from '../../src/executors/buildkit/strategies/apt.js';
import { distrolessWithTooling } from '../../src/executors/buildkit/strategies/distroless.js';
import { rpmCommands, rpmInImage, rpmWithTooling } from '../../src/executors/buildkit/strategies/rpm.js';
import { UsageError } from '../../src/lib/errors.js';
import { httpLibraryIndex } from '../../src/plan/library-index.js';
import { packageSources } from '../../src/worker.js';
import type { OpBody } from '../../src/executors/buildkit/proto/ops.js';

// Mirrors change where bytes come from, never what they are checked against
// or what the image says: these are the mappings, the config, the flags and
// the BuildKit runs they turn into.

test('apt: the longest matching prefix maps a source; other sources and look-alike paths are left alone', () => {
  const mirrors = [
    { from: 'http://deb.debian.org/debian', to: 'https://mirror.internal/debian/' },
    { from: 'http://deb.debian.org/debian-security', to: 'https://mirror.internal/security', credentials: { username: 'u', password: 'p' } },
  ];
  assert.deepEqual(mirroredUri('http://deb.debian.org/debian', mirrors), { uri: 'https://mirror.internal/debian', mirror: mirrors[0] });
  // Either scheme and any host case match; the path keeps its case.
  assert.equal(mirroredUri('HTTPS://Deb.Debian.org/debian/', mirrors).uri, 'https://mirror.internal/debian');
  assert.equal(mirroredUri('http://deb.debian.org/debian/Sub', mirrors).uri, 'https://mirror.internal/debian/Sub');
  const security = mirroredUri('http://deb.debian.org/debian-security', mirrors);
  assert.equal(security.uri, 'https://mirror.internal/security');
  assert.equal(security.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
  assert.deepEqual(mirroredUri('http://deb.debian.org/debianx', mirrors), { uri: 'http://deb.debian.org/debianx' });
  assert.deepEqual(mirroredUri('http://security.ubuntu.com/ubuntu', mirrors), { uri: 'http://security.ubuntu.com/ubuntu' });
});

test('apt: the sources as a deb822 file with mirrored URIs, keyrings (inline ones too) and architectures kept', () => {
  const key = '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF\n-----END PGP PUBLIC KEY BLOCK-----';
  const sources = [
    ...parseDeb822Sources('Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n', 'x'),
    { uri: 'https://repo.example/apt', suite: 'stable', components: ['main'], signedBy: [key], architectures: ['amd64'], origin: 'y' },
  ];
  assert.equal(mirroredSourcesFile(sources, [{ from: 'http://other.example', to: 'http://m.example' }]), undefined);
  const file = mirroredSourcesFile(sources, [{ from: 'http://deb.debian.org/debian', to: 'http://127.0.0.1:9/debian' }])!;
  assert.equal(file.credentials, false);
  const reparsed = parseDeb822Sources(file.text, 'mirrored');
  assert.deepEqual(reparsed.map((s) => [s.uri, s.suite, s.components.join(' ')]), [
    ['http://127.0.0.1:9/debian', 'bookworm', 'main contrib'], ['http://127.0.0.1:9/debian', 'bookworm-updates', 'main contrib'], ['https://repo.example/apt', 'stable', 'main'],
  ]);
  assert.deepEqual(reparsed[0]!.signedBy, ['/usr/share/keyrings/debian-archive-keyring.gpg']);
  assert.deepEqual(reparsed[2]!.signedBy, [key]);
  assert.deepEqual(reparsed[2]!.architectures, ['amd64']);
});

function exec(state: LlbState): Extract<OpBody, { kind: 'exec' }> {
  assert.equal(state.node.body.kind, 'exec');
  return state.node.body as Extract<OpBody, { kind: 'exec' }>;
}

const platform = { architecture: 'amd64', os: 'linux' };

test('BuildKit apt: mirrored sources on a read-only mount for both runs, a cache per mapping; the image keeps its own sources', () => {
  const base = image('registry.example/app@sha256:' + 'a'.repeat(64), { platform });
  const plain = aptInstall(base, [{ name: 'tzdata', version: '2025b-0+deb12u1' }], 'amd64');
  assert.deepEqual(exec(plain.lower).args, ['apt-get', 'update', '-q']);
  const text = 'Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm\nComponents: main\n';
  const { lower, upper } = aptInstall(base, [{ name: 'tzdata', version: '2025b-0+deb12u1' }], 'amd64', { text, credentials: false });
  for (const run of [exec(lower), exec(upper)]) {
    assert.deepEqual(run.args.slice(0, 5), ['apt-get', '-o', 'Dir::Etc::SourceList=/run/patchd-apt-sources/none.list', '-o', 'Dir::Etc::SourceParts=/run/patchd-apt-sources']);
    const bind = run.mounts.find((m) => m.dest === '/run/patchd-apt-sources');
    assert.ok(bind && bind.kind === 'bind' && bind.readonly === true && bind.output === -1, 'read-only, not an output');
    const cache = run.mounts.find((m) => m.kind === 'cache');
    assert.match(cache && cache.kind === 'cache' ? cache.id : '', /^patchd-apt-cache-[0-9a-f]{16}$/);
    assert.equal(run.mounts.find((m) => m.dest === '/')?.kind, 'bind');
  }
  const files = upper.node.inputs.find((i) => i.node.body.kind === 'mkfile')!;
  const written = [files.node, ...files.node.inputs.map((i) => i.node)].map((n) => n.body).filter((b): b is Extract<OpBody, { kind: 'mkfile' }> => b.kind === 'mkfile');
  assert.deepEqual(written.map((b) => b.path).sort(), ['/none.list', '/patchd.sources']);
  assert.equal(written.find((b) => b.path === '/patchd.sources')!.data.toString(), text);
  assert.throws(() => aptInstall(base, [{ name: 'tzdata', version: '1' }], 'amd64', { text, credentials: true }), { code: 'EXECUTOR_UNSUPPORTED' });
});

const yumRepos = `[baseos]
name=Rocky Linux $releasever - BaseOS
mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=BaseOS-$releasever
#baseurl=http://dl.rockylinux.org/$contentdir/$releasever/BaseOS/$basearch/os/
gpgcheck=1
enabled=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9

[appstream]
name=Rocky Linux $releasever - AppStream
baseurl=http://dl.rockylinux.org/pub/rocky/$releasever/AppStream/$basearch/os/
  http://backup.example/rocky/$releasever/AppStream/$basearch/os/
gpgcheck=1

[fedora]
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-$releasever&arch=$basearch
gpgcheck=1

[untouched]
baseurl=https://vendor.example/repo/
`;

function reader(files: Record<string, string>) {
  return {
    readFile: async (p: string) => (files[p] === undefined ? undefined : Buffer.from(files[p]!)),
    readdir: (dir: string) => Object.keys(files).filter((p) => p.startsWith(`${dir}/`)).map((p) => p.slice(dir.length + 1)),
  };
}

test('rpm: baseurls, mirrorlists and metalinks mapped by prefix or by repository id; repositories no mirror names are left alone', async () => {
  const { repos, files } = await readRpmRepos(reader({ 'etc/yum.repos.d/rocky.repo': yumRepos }), repoDirs.dnf);
  assert.deepEqual(repos.map((r) => r.id), ['baseos', 'appstream', 'fedora', 'untouched']);
  assert.equal(repos[1]!.baseurls.length, 2);
  const plan = planRepoMirrors(repos, files, [
    { from: 'http://dl.rockylinux.org/pub/rocky', to: 'https://mirror.internal/rocky' },
    { from: 'https://mirrors.rockylinux.org/mirrorlist', to: 'https://mirror.internal/mirrorlist' },
    { repo: 'fedora', to: 'https://mirror.internal/fedora/$releasever/Everything/$basearch/os/' },
  ]);
  assert.deepEqual(plan.overrides, [
    { id: 'baseos', baseurls: [], mirrorlist: 'https://mirror.internal/mirrorlist?arch=$basearch&repo=BaseOS-$releasever' },
    { id: 'appstream', baseurls: ['https://mirror.internal/rocky/$releasever/AppStream/$basearch/os/', 'http://backup.example/rocky/$releasever/AppStream/$basearch/os/'] },
    { id: 'fedora', baseurls: ['https://mirror.internal/fedora/$releasever/Everything/$basearch/os/'], metalink: '' },
  ]);
  const { upgrade, refresh } = rpmCommands('dnf', ['openssl'], plan);
  assert.deepEqual(upgrade, [
    'dnf', '-y', '--setopt=install_weak_deps=False',
    '--setopt=baseos.mirrorlist=https://mirror.internal/mirrorlist?arch=$basearch&repo=BaseOS-$releasever',
    '--setopt=appstream.baseurl=https://mirror.internal/rocky/$releasever/AppStream/$basearch/os/,http://backup.example/rocky/$releasever/AppStream/$basearch/os/',
    '--setopt=fedora.baseurl=https://mirror.internal/fedora/$releasever/Everything/$basearch/os/', '--setopt=fedora.metalink=',
    'upgrade', 'openssl',
  ]);
  assert.deepEqual(refresh.slice(0, 2), ['dnf', '--setopt=baseos.mirrorlist=https://mirror.internal/mirrorlist?arch=$basearch&repo=BaseOS-$releasever']);
  // gpgcheck is never touched.
  assert.ok(![...upgrade, ...refresh].some((a) => /gpgcheck/.test(a)));
  // Same mapping, same cache; another mapping, another cache.
  assert.equal(plan.key, planRepoMirrors(repos, files, [
    { from: 'http://dl.rockylinux.org/pub/rocky', to: 'https://mirror.internal/rocky' },
    { from: 'https://mirrors.rockylinux.org/mirrorlist', to: 'https://mirror.internal/mirrorlist' },
    { repo: 'fedora', to: 'https://mirror.internal/fedora/$releasever/Everything/$basearch/os/' },
  ]).key);
  const base = image('registry.example/rocky@sha256:' + 'b'.repeat(64), { platform });
  const mounts = exec(rpmInImage(base, 'dnf', 'all', plan).upper).mounts;
  assert.deepEqual(mounts.filter((m) => m.kind === 'cache').map((m) => (m.kind === 'cache' ? m.id : '')), [`patchd-dnf-cache-${plan.key}`]);
  assert.equal(exec(rpmInImage(base, 'dnf', 'all').upper).mounts.find((m) => m.kind === 'cache')?.kind === 'cache' ? 'ok' : '', 'ok');
  // The tooling image's dnf works on the target's repositories with the same options.
  const tooling = rpmWithTooling(base, image('tooling', { platform }), ['openssl'], '9', '/var/lib/rpm', plan);
  assert.ok(exec(tooling.upper).args.includes('--setopt=fedora.metalink='));
  // Nothing that could break out of an option reaches the package manager.
  assert.throws(() => rpmCommands('dnf', 'all', { ...plan, overrides: [{ id: 'x', baseurls: ['https://m.example/a b'] }] }), { code: 'BUILD_REQUEST_INVALID' });
  assert.throws(() => rpmCommands('dnf', 'all', { ...plan, overrides: [{ id: 'x --setopt=gpgcheck=0', baseurls: ['https://m.example/'] }] }), { code: 'BUILD_REQUEST_INVALID' });
});

test('rpm: zypper reads a rewritten copy of its repos.d from a read-only mount; the image’s repo files are not changed', async () => {
  const zypperRepo = '[repo-oss]\nname=Main Repository\nenabled=1\nautorefresh=1\nbaseurl=http://download.opensuse.org/distribution/leap/15.6/repo/oss/\ngpgcheck=1\n';
  const { repos, files } = await readRpmRepos(reader({ 'etc/zypp/repos.d/repo-oss.repo': zypperRepo, 'etc/zypp/repos.d/notes.txt': 'x' }), repoDirs.zypper);
  const plan = planRepoMirrors(repos, files, [{ from: 'http://download.opensuse.org', to: 'https://mirror.internal/opensuse' }]);
  assert.deepEqual(plan.rewrittenFiles, [{ name: 'repo-oss.repo', text: '[repo-oss]\nbaseurl=https://mirror.internal/opensuse/distribution/leap/15.6/repo/oss/\nname=Main Repository\nenabled=1\nautorefresh=1\ngpgcheck=1\n' }]);
  const { refresh, upgrade } = rpmCommands('zypper', ['openssl'], plan);
  assert.deepEqual(refresh, ['zypper', '--non-interactive', '--reposd-dir', '/run/patchd-repos.d', 'refresh']);
  assert.deepEqual(upgrade, ['zypper', '--non-interactive', '--reposd-dir', '/run/patchd-repos.d', 'update', '--no-recommends', 'openssl']);
  const run = exec(rpmInImage(image('suse', { platform }), 'zypper', ['openssl'], plan).upper);
  const bind = run.mounts.find((m) => m.dest === '/run/patchd-repos.d');
  assert.ok(bind && bind.kind === 'bind' && bind.readonly === true);
  // Without a matching mirror, the run is exactly as before.
  const none = planRepoMirrors(repos, files, [{ from: 'http://elsewhere.example', to: 'http://m.example' }]);
  assert.deepEqual(rpmCommands('zypper', ['openssl'], none).refresh, ['zypper', '--non-interactive', 'refresh']);
});

const configYaml = `
mirrors:
  apt:
    - { from: "http://deb.debian.org/debian", to: "https://default.internal/debian" }
  pypi: { url: "https://pypi.internal/pypi" }
registries:
  main:
    url: http://127.0.0.1:5000
    policy:
      mirrors:
        apt:
          - { from: "http://deb.debian.org/debian", to: "https://mirror.internal/debian" }
          - { from: "http://deb.debian.org/debian-security", to: "https://mirror.internal/debian-security", credentials: { username: file-user, password: file-pass } }
        rpm:
          - { from: "http://dl.rockylinux.org/pub/rocky", to: "https://mirror.internal/rocky" }
          - { repo: fedora, to: "https://mirror.internal/fedora/" }
        npm: { url: "https://npm.internal", credentials: { token: file-token } }
        goProxy: { url: "https://goproxy.internal" }
  other:
    url: http://127.0.0.1:5001
`;

test('config: policy mirrors parsed, env credentials applied, top-level mirrors as defaults kind by kind', () => {
  const config = loadConfig({
    PATCHD_MAIN_APT_USERNAME: 'env-user', PATCHD_MAIN_APT_PASSWORD: 'env-pass',
    PATCHD_MAIN_NPM_TOKEN: 'env-token', PATCHD_MAIN_GOPROXY_USERNAME: 'go-user', PATCHD_MAIN_GOPROXY_PASSWORD: 'go-pass',
    PATCHD_PYPI_USERNAME: 'pypi-user', PATCHD_PYPI_PASSWORD: 'pypi-pass',
    PATCHD_OTHER_NUGET_TOKEN: 'unused: other configures no NuGet mirror',
  }, configYaml);
  const main = mirrorsForRegistry(config, config.registries['main']!);
  assert.deepEqual(main.apt?.map((m) => [m.to, m.credentials]), [
    ['https://mirror.internal/debian', { username: 'env-user', password: 'env-pass' }],
    ['https://mirror.internal/debian-security', { username: 'env-user', password: 'env-pass' }],
  ]);
  assert.deepEqual(main.rpm, [{ from: 'http://dl.rockylinux.org/pub/rocky', to: 'https://mirror.internal/rocky' }, { repo: 'fedora', to: 'https://mirror.internal/fedora/' }]);
  assert.deepEqual(main.npm, { url: 'https://npm.internal', credentials: { token: 'env-token' } });
  assert.deepEqual(main.goProxy, { url: 'https://goproxy.internal', credentials: { username: 'go-user', password: 'go-pass' } });
  assert.deepEqual(main.pypi, { url: 'https://pypi.internal/pypi', credentials: { username: 'pypi-user', password: 'pypi-pass' } }, 'the top-level one');
  const other = mirrorsForRegistry(config, config.registries['other']!);
  assert.deepEqual(other.apt, [{ from: 'http://deb.debian.org/debian', to: 'https://default.internal/debian' }]);
  assert.equal(other.nuget, undefined);
  // Without env, the file's credentials stand.
  const fileOnly = mirrorsForRegistry(loadConfig({}, configYaml), loadConfig({}, configYaml).registries['main']!);
  assert.deepEqual(fileOnly.apt?.[1]?.credentials, { username: 'file-user', password: 'file-pass' });
});

test('config: unknown mirror keys, non-http mirrors and credentials inside URLs are refused (the secret is not repeated)', () => {
  const bad = (yaml: string) => assert.throws(() => loadConfig({}, yaml), (error: unknown) => {
    assert.ok(error instanceof ConfigError && error.code === 'CONFIG_INVALID');
    assert.doesNotMatch(error.message, /s3cret/);
    return true;
  });
  bad(configYaml.replace('goProxy: {', 'goproxy: {'));
  bad(configYaml.replace('npm: { url: "https://npm.internal", credentials: { token: file-token } }', 'npm: { url: "https://npm.internal", token: s3cret }'));
  bad(configYaml.replace('{ repo: fedora,', '{ repo: fedora, gpgcheck: false,'));
  bad(configYaml.replace('"https://pypi.internal/pypi"', '"https://user:s3cret@pypi.internal/pypi"'));
  bad(configYaml.replace('to: "https://mirror.internal/rocky"', 'to: "ftp://mirror.internal/rocky"'));
  bad(`registries:\n  main:\n    url: http://127.0.0.1:5000\n    policy:\n      mirrors:\n        apt: [{ from: "http://deb.debian.org/debian", to: "https://m.internal/debian", extra: 1 }]\n`);
});

test('flags: --apt-mirror/--rpm-mirror and the index flags; credentials only from the environment', () => {
  const env = { PATCHD_APT_USERNAME: 'u', PATCHD_APT_PASSWORD: 'p', PATCHD_PYPI_USERNAME: 'pu', PATCHD_PYPI_PASSWORD: 'pp', PATCHD_NPM_TOKEN: 't' };
  assert.deepEqual(mirrorsFromFlags({ 'apt-mirror': ['http://deb.debian.org/debian=http://127.0.0.1:8/debian/'], 'rpm-mirror': ['baseos=https://m.example/baseos', 'http://dl.rockylinux.org=https://m.example'] }, env), {
    apt: [{ from: 'http://deb.debian.org/debian', to: 'http://127.0.0.1:8/debian', credentials: { username: 'u', password: 'p' } }],
    rpm: [{ repo: 'baseos', to: 'https://m.example/baseos' }, { from: 'http://dl.rockylinux.org', to: 'https://m.example' }],
  });
  assert.deepEqual(mirrorsFromFlags({}, env), {});
  const indexes = indexesFromFlags({ 'pypi-index': 'http://127.0.0.1:9/pypi', 'npm-registry': 'http://127.0.0.1:9/npm/' }, env);
  assert.deepEqual(indexes.pypi, { url: 'http://127.0.0.1:9/pypi', credentials: { username: 'pu', password: 'pp' } });
  assert.deepEqual(indexes.npm, { url: 'http://127.0.0.1:9/npm', credentials: { token: 't' } });
  assert.deepEqual(indexes.goProxy, { url: 'https://proxy.golang.org' }, 'the public index, without credentials');
  assert.deepEqual(indexesFromFlags({}, env).pypi, { url: 'https://pypi.org/pypi' }, 'env credentials never go to the public index');
  for (const bad of [() => mirrorsFromFlags({ 'apt-mirror': ['http://deb.debian.org/debian=http://u:s3cret@m.example/debian'] }, {}),
    () => indexesFromFlags({ 'pypi-index': 'https://u:s3cret@m.example/pypi' }, {}),
    () => mirrorsFromFlags({ 'apt-mirror': ['http://m.example/debian'] }, {}),
    () => mirrorsFromFlags({ 'apt-mirror': ['deb.debian.org=http://m.example/debian'] }, {}),
    () => mirrorsFromFlags({ 'rpm-mirror': ['bad id=http://m.example/'] }, {})]) {
    assert.throws(bad, (error: unknown) => error instanceof UsageError && !/s3cret/.test(error.message));
  }
});

test('worker: each registry gets its policy\'s mirrors and indexes (with credentials); one without keeps the shared index', () => {
  const config = loadConfig({ PATCHD_MAIN_NPM_TOKEN: 'tok' }, `
libraryIndex: { goProxy: "https://goproxy.example" }
registries:
  main:
    url: http://127.0.0.1:5000
    policy:
      mirrors:
        apt: [{ from: "http://deb.debian.org/debian", to: "https://mirror.internal/debian" }]
        npm: { url: "https://npm.internal" }
  other:
    url: http://127.0.0.1:5001
`);
  const shared = httpLibraryIndex();
  const sources = packageSources(config, { dispatcher: new Agent(), libraryIndex: shared });
  const main = sources.get('main')!;
  assert.deepEqual(main.mirrors, { apt: [{ from: 'http://deb.debian.org/debian', to: 'https://mirror.internal/debian' }] });
  assert.deepEqual(main.packageIndexes, {
    pypi: { url: 'https://pypi.org/pypi' }, npm: { url: 'https://npm.internal', credentials: { token: 'tok' } },
    goProxy: { url: 'https://goproxy.example' }, nuget: { url: 'https://api.nuget.org/v3-flatcontainer' },
  });
  assert.notEqual(main.libraryIndex, shared);
  const other = sources.get('other')!;
  assert.equal(other.libraryIndex, shared);
  assert.deepEqual(other.mirrors, {});
});

test('apt fetches: the mirror gets the credentials, a redirect to another origin does not', async () => {
  const seen: { server: string; authorization?: string }[] = [];
  const b = createServer((req, res) => { seen.push({ server: 'b', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) }); res.end('ok'); });
  await new Promise<void>((r) => b.listen(0, '127.0.0.1', r));
  const a = createServer((req, res) => {
    seen.push({ server: 'a', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    res.writeHead(302, { location: `http://127.0.0.1:${(b.address() as AddressInfo).port}/elsewhere` }).end();
  });
  await new Promise<void>((r) => a.listen(0, '127.0.0.1', r));
  const dispatcher = new Agent();
  try {
    const res = await fetchWithRetries(dispatcher, `http://127.0.0.1:${(a.address() as AddressInfo).port}/debian/dists/bookworm/InRelease`, { authorization: 'Basic c2VjcmV0' });
    assert.equal(await res.body.text(), 'ok');
    assert.deepEqual(seen, [{ server: 'a', authorization: 'Basic c2VjcmV0' }, { server: 'b' }]);
  } finally {
    await dispatcher.close();
    a.close(); b.close();
  }
});

test('library index given as .../simple: PEP 691 JSON, versions whose every file is yanked left out; credentials only to the index\'s origin', async () => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  const index = agent.get('https://pypi.internal');
  let authorization: unknown;
  index.intercept({ path: '/simple/typing-extensions/', method: 'GET' }).reply((opts) => {
    authorization = (opts.headers as Record<string, string>)['authorization'];
    return {
      statusCode: 200,
      data: JSON.stringify({
        meta: { 'api-version': '1.1' },
        files: [
          { filename: 'typing_extensions-4.7.0-py3-none-any.whl', yanked: false },
          { filename: 'typing_extensions-4.7.0.tar.gz' },
          { filename: 'typing_extensions-4.7.1-py3-none-any.whl', yanked: 'broken' },
          { filename: 'typing_extensions-4.8.0.tar.gz' },
        ],
      }),
    };
  });
  const found = await httpLibraryIndex({ dispatcher: agent, indexes: { pypi: { url: 'https://pypi.internal/simple/', credentials: { username: 'u', password: 'p' } } } }).versions('pypi', 'Typing_Extensions');
  assert.deepEqual([...found.versions].sort(), ['4.7.0', '4.8.0']);
  assert.equal(found.latest, '4.8.0');
  assert.equal(authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
  await agent.close();
});

test('BuildKit distroless: the tooling\'s apt gets the mirror pairs (its own sources rewritten, never the target\'s); credentialed mirrors refused', () => {
  const p = { architecture: 'amd64', os: 'linux' };
  const mirrors = [{ from: 'http://deb.debian.org/debian/', to: 'http://127.0.0.1:9/m/debian' }];
  const run = exec(distrolessWithTooling(image('target', { platform: p }), image('tooling', { platform: p }), 'all', 'amd64', mirrors).upper);
  assert.ok(run.env.includes('PATCHD_APT_MIRRORS=http://deb.debian.org/debian http://127.0.0.1:9/m/debian'));
  assert.ok(!exec(distrolessWithTooling(image('target', { platform: p }), image('tooling', { platform: p }), 'all', 'amd64').upper).env.some((e) => e.startsWith('PATCHD_APT_MIRRORS=')));
  assert.throws(() => distrolessWithTooling(image('t', { platform: p }), image('x', { platform: p }), 'all', 'amd64', [{ ...mirrors[0]!, credentials: { username: 'u', password: 'p' } }]), { code: 'EXECUTOR_UNSUPPORTED' });
  assert.throws(() => distrolessWithTooling(image('t', { platform: p }), image('x', { platform: p }), 'all', 'amd64', [{ from: 'http://a.example/x y', to: 'http://b.example' }]), { code: 'BUILD_REQUEST_INVALID' });
});

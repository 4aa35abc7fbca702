import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { aptUpgradedRoot } from '../harness/oracle.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { run, run as run0 } from '../harness/tools.js';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { BuildkitClient } from '../../src/executors/buildkit/client.js';
import { buildPatchLayer } from '../../src/executors/buildkit/executor.js';
import { createLogger } from '../../src/lib/log.js';
import { staticKeychain, type Keychain } from '../../src/oci/keychain.js';
import { compareTrees, volatilePaths } from '../harness/tree-compare.js';

// The BuildKit executor end to end: a real buildkitd (runc, overlayfs) driven
// over gRPC by `patchd patch --executor buildkit`, against the same apt
// oracle as the in-process spine — and behind a registry that wants a
// password, which buildkitd gets from patchd through the session.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let work: string;
let pushed: { digest: string; layerDigest: string };
const credentials = { username: 'patchd', password: 'b00ts' };

before(async () => {
  [registry, buildkitd] = await Promise.all([startRegistry({ htpasswd: credentials }), startBuildkitd({ tcp: true })]);
  work = await mkdtemp(join(tmpdir(), 'patchd-buildkit-e2e-'));
  pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main', creds: credentials });
});

after(async () => {
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

const env = () => ({ ...process.env, PATCHD_REGISTRY_USERNAME: credentials.username, PATCHD_REGISTRY_PASSWORD: credentials.password, DOCKER_CONFIG: join(work, 'no-docker') });

test('patchd doctor reports the daemon, its worker and diff/merge support', async () => {
  const { stdout } = await run('npx', ['--no-install', 'patchd', 'doctor', '--buildkit-addr', buildkitd.address], { cwd: repoRoot });
  assert.match(stdout, /^buildkit unix:\/\/.*: v0\.32\.2, diff\/merge ok$/m);
  assert.match(stdout, /worker \S+: oci executor, overlayfs snapshotter, linux\/amd64/);
  // Over TCP with mutual TLS, from the config file's buildkit section.
  const tls = buildkitd.tcp!;
  const config = join(work, 'doctor.yaml');
  await writeFile(config, `buildkit: { address: "${tls.address}", tls: { caFile: "${tls.caFile}", certFile: "${tls.certFile}", keyFile: "${tls.keyFile}" } }\nregistries: {}\n`);
  const overTls = await run('npx', ['--no-install', 'patchd', 'doctor', '--config', config], { cwd: repoRoot });
  assert.match(overTls.stdout, /^buildkit tcp:\/\/127\.0\.0\.1:\d+: v0\.32\.2, diff\/merge ok$/m);
  // Without a client certificate the daemon refuses the connection.
  await writeFile(config, `buildkit: { address: "${tls.address}", tls: { caFile: "${tls.caFile}" } }\nregistries: {}\n`);
  const noCert = await run('npx', ['--no-install', 'patchd', 'doctor', '--config', config], { cwd: repoRoot, allowFailure: true });
  assert.equal(noCert.code, 1);
  const missing = await run('npx', ['--no-install', 'patchd', 'doctor', '--buildkit-addr', 'unix:///nonexistent/buildkitd.sock'], { cwd: repoRoot, allowFailure: true });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no BuildKit socket at \/nonexistent\/buildkitd\.sock/);
});

test('--executor buildkit equals apt-get upgrade file for file; the base is pulled with patchd\'s credentials', { timeout: 30 * 60_000 }, async () => {
  const image = `${registry.host}/fixtures/bookworm:main`;
  const patch = await run('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--executor', 'buildkit', '--buildkit-addr', buildkitd.address, '--cache-dir', join(work, 'cache')], { cwd: repoRoot, env: env() });
  assert.match(patch.stdout, /^ca-certificates 20230311\+deb12u1 -> \S+/m, 'ca-certificates is upgraded, through its postinst');
  assert.match(patch.stdout, /patched .* -> .*:main-patched \(sha256:[0-9a-f]{64}\)/);

  const auth = ['--src-creds', `${credentials.username}:${credentials.password}`];
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', `${credentials.username}:${credentials.password}`, `docker://${image}-patched`])).stdout) as { layers: { digest: string }[] };
  assert.equal(manifest.layers.length, 2, 'exactly one layer added');
  assert.equal(manifest.layers[0]!.digest, pushed.layerDigest, 'original layer unchanged');
  const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', '--creds', `${credentials.username}:${credentials.password}`, `docker://${image}-patched`])).stdout) as { history: { created_by?: string }[] };
  assert.match(config.history.at(-1)!.created_by ?? '', /^patchd \(buildkit\): /);

  const layout = join(work, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', ...auth, `docker://${image}-patched`, `oci:${layout}:patched`]);
  const bundle = join(work, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:patched`, bundle]);
  const oracle = await aptUpgradedRoot();
  const differences = await compareTrees(join(bundle, 'rootfs'), oracle.upgradedRoot, { ignore: volatilePaths });
  assert.deepEqual(differences, [], `BuildKit's result differs from apt-get upgrade:\n${differences.slice(0, 40).map((d) => JSON.stringify(d)).join('\n')}`);
  for (const command of [['openssl', 'version'], ['sh', '-c', 'sha256sum /etc/ssl/certs/ca-certificates.crt']]) {
    const ours = await run('chroot', [join(bundle, 'rootfs'), ...command]);
    const apts = await run('chroot', [oracle.upgradedRoot, ...command]);
    assert.equal(ours.stdout, apts.stdout);
  }
});

test('without credentials in the session, buildkitd cannot pull the private base, and the failure says so', { timeout: 10 * 60_000 }, async () => {
  // An image buildkitd has not pulled yet (an extra layer on the fixture), so its manifest must come from the registry.
  const extra = join(work, 'extra.tar');
  await run0('sh', ['-c', `mkdir -p '${work}/extra/etc' && echo private > '${work}/extra/etc/private' && tar -C '${work}/extra' -cf '${extra}' .`]);
  const privateImage = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), extraLayers: [extra], registryHost: registry.host, repository: 'fixtures/private', tag: 'v1', creds: credentials });
  const client = new BuildkitClient({ address: buildkitd.address });
  try {
    const run = (keychain?: Keychain) => buildPatchLayer(
      { client, ...(keychain ? { keychain } : {}), baseRef: `${registry.host}/fixtures/private@${privateImage.digest}`, platform: { architecture: 'amd64', os: 'linux' }, workDir: work, logger: createLogger({ level: 'silent' }) },
      (base) => ({ lower: base, upper: base.run({ args: ['/bin/sh', '-c', 'echo patched > /etc/patchd-probe'], name: 'probe' }) }),
      'application/vnd.oci.image.layer.v1.tar+gzip',
    );
    await assert.rejects(run(), (error: Error) => /BUILDKIT_SOLVE_FAILED|BuildKit build failed/.test(`${(error as { code?: string }).code} ${error.message}`) && /401|unauthorized|authoriz/i.test(error.message));
    const layer = await run(staticKeychain({ [registry.host]: credentials }));
    const files = (await run0('sh', ['-c', `tar -tzf '${await layerPath(layer)}'`])).stdout.split('\n').filter(Boolean);
    assert.deepEqual(files.sort(), ['etc/', 'etc/patchd-probe']);
  } finally {
    client.close();
  }
});

async function layerPath(layer: { open(): Promise<NodeJS.ReadableStream> }): Promise<string> {
  const path = join(work, `layer-${Date.now()}.tgz`);
  await pipeline(await layer.open(), createWriteStream(path));
  return path;
}

test('auto routing: a package whose maintainer scripts patchd cannot stand in for sends the plan to BuildKit', { timeout: 20 * 60_000 }, async () => {
  const pythonRoot = (await run0('bash', [join(repoRoot, 'test/fixtures/build-bookworm-python.sh')])).stdout.trim().split('\n').at(-1)!;
  await pushRootfsImage({ tarPath: pythonRoot, registryHost: registry.host, repository: 'fixtures/python', tag: 'v1', creds: credentials });
  const image = `${registry.host}/fixtures/python:v1`;
  const patchd = (args: string[]) => run0('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--cache-dir', join(work, 'cache'), ...args], { cwd: repoRoot, env: env(), allowFailure: true });

  const alone = await patchd([]);
  assert.equal(alone.code, 1);
  assert.match(alone.stderr, /python3\.11-minimal.*\(no BuildKit daemon is configured: --buildkit-addr\) \[SCRIPTS_REQUIRED\]/s);

  const skipping = await patchd(['-t', 'inprocess', '--executor', 'inprocess', '--ignore-errors']);
  assert.equal(skipping.code, 0, skipping.stderr);
  assert.match(skipping.stdout, /^failed: (lib)?python3\.11-minimal: /m);
  assert.match(skipping.stdout, /patched .* -> .*:inprocess/);

  const routed = await patchd(['--buildkit-addr', buildkitd.address]);
  assert.equal(routed.code, 0, routed.stderr);
  assert.match(routed.stdout, /^python3\.11-minimal 3\.11\.2-6\+deb12u8 -> \S+/m);
  assert.doesNotMatch(routed.stdout, /^failed:/m);
  const config = JSON.parse((await run0('skopeo', ['inspect', '--config', '--tls-verify=false', '--creds', `${credentials.username}:${credentials.password}`, `docker://${image}-patched`])).stdout) as { history: { created_by?: string }[] };
  assert.match(config.history.at(-1)!.created_by ?? '', /^patchd \(buildkit\): .*python3\.11-minimal 3\.11\.2-6\+deb12u8 -> /);
});

test('distroless (status.d, no apt, no shell) through a Debian tooling image: packages upgraded, status.d rewritten', { timeout: 20 * 60_000 }, async () => {
  // A distroless-style root made from the fixture: dpkg's records as status.d/ stanzas
  // and md5sums (as distroless builds them), no status file, no apt sources, no shells.
  const root = join(work, 'distroless');
  await run0('sh', ['-c', `set -e; mkdir -p '${root}'; tar -xpf '${await bookwormRootfsTar()}' -C '${root}'
    cd '${root}/var/lib/dpkg'; mkdir status.d
    awk -v RS= -v ORS='\\n\\n' '/Status: install ok installed/' status > /tmp/patchd-status.$$
    awk -v RS= '{ n=$0; sub(/^Package: /, "", n); sub(/\\n.*/, "", n); gsub(/\\nStatus: [^\\n]*/, ""); print > ("status.d/" n) }' /tmp/patchd-status.$$
    rm -f /tmp/patchd-status.$$
    for m in info/*.md5sums; do b=$(basename "$m" .md5sums); cp "$m" "status.d/\${b%%:*}.md5sums"; done
    rm -rf status status-old info available diversions statoverride triggers
    rm -rf '${root}/etc/apt/sources.list.d' '${root}/etc/apt/sources.list' '${root}/bin/sh' '${root}/usr/bin/dash' '${root}/usr/bin/bash'
    tar --numeric-owner -C '${root}' -cf '${root}.tar' .`]);
  await pushRootfsImage({ tarPath: `${root}.tar`, registryHost: registry.host, repository: 'fixtures/distroless', tag: 'v1', creds: credentials });
  await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'tooling/debian', tag: 'bookworm', creds: credentials });
  const image = `${registry.host}/fixtures/distroless:v1`;

  const without = await run0('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--cache-dir', join(work, 'cache')], { cwd: repoRoot, env: env() });
  assert.match(without.stdout, /skipped: the image has no apt sources to take updates from \(a distroless image: give BuildKit a Debian tooling image, --tooling-image\)/);

  const patch = await run0('npx', ['--no-install', 'patchd', 'patch', '-i', image, '--buildkit-addr', buildkitd.address, '--tooling-image', `${registry.host}/tooling/debian:bookworm`, '--cache-dir', join(work, 'cache')], { cwd: repoRoot, env: env() });
  assert.match(patch.stdout, /^libssl3 3\.0\.20-1~deb12u2 -> 3\.0\.22-1~deb12u2 /m);
  assert.match(patch.stdout, /patched .* -> .*:v1-patched/);

  await run0('skopeo', ['copy', '--src-tls-verify=false', '--src-creds', `${credentials.username}:${credentials.password}`, `docker://${image}-patched`, `oci:${join(work, 'dl-layout')}:patched`]);
  await run0('umoci', ['unpack', '--image', `${join(work, 'dl-layout')}:patched`, join(work, 'dl-bundle')]);
  const patched = join(work, 'dl-bundle', 'rootfs');
  const status = (await run0('cat', [join(patched, 'var/lib/dpkg/status.d/libssl3')])).stdout;
  assert.match(status, /^Version: 3\.0\.22-1~deb12u2$/m);
  assert.doesNotMatch(status, /^Status:/m);
  assert.ok((await run0('cat', [join(patched, 'var/lib/dpkg/status.d/libssl3.md5sums')])).stdout.includes('libssl.so.3'));
  // The upgraded library is byte for byte what apt-get upgrade installs, and the image's openssl uses it.
  const oracle = await aptUpgradedRoot();
  const lib = 'usr/lib/x86_64-linux-gnu/libssl.so.3';
  assert.equal((await run0('sha256sum', [join(patched, lib)])).stdout.split(' ')[0], (await run0('sha256sum', [join(oracle.upgradedRoot, lib)])).stdout.split(' ')[0]);
  assert.equal((await run0('chroot', [patched, '/usr/bin/openssl', 'version'])).stdout.split(' ')[1], (await run0('chroot', [oracle.upgradedRoot, 'openssl', 'version'])).stdout.split(' ')[1]);
  // No tooling leaks into the target: no shell came back, no apt state was written.
  assert.equal(await run0('test', ['-e', join(patched, 'bin/sh')], { allowFailure: true }).then((r) => r.code), 1);
});

test('patchd serve with a buildkit section: a pushed image is patched through BuildKit; a missing daemon stops start-up clearly', { timeout: 20 * 60_000 }, async () => {
  const serveDir = join(work, 'serve');
  await run0('mkdir', ['-p', serveDir]);
  const config = (address: string) => () => [
    `dataDir: ${JSON.stringify(join(serveDir, 'data'))}`,
    `cacheDir: ${JSON.stringify(join(work, 'cache'))}`,
    `buildkit: { address: "${address}" }`,
    'registries:',
    `  local: { url: "${registry.url}", webhookSecret: s3cret, credentials: { username: "${credentials.username}", password: "${credentials.password}" }, policy: { executor: buildkit, tagSuffix: -bk } }`,
  ];
  // No daemon at that address: patchd serve refuses to start and says why.
  const broken = await run0('node', [join(repoRoot, 'bin/patchd.js'), 'serve', '--config', await writeServeConfig(serveDir, config('unix:///nonexistent/buildkitd.sock')())], { allowFailure: true });
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /no BuildKit socket at \/nonexistent\/buildkitd\.sock/);

  const server = await startPatchdServe({ dir: serveDir, config: config(buildkitd.address) });
  try {
    const body = JSON.stringify({ events: [{ id: 'e1', timestamp: '2026-11-24T07:00:00Z', action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: pushed.digest, size: 1, length: 1, repository: 'fixtures/bookworm', tag: 'main' }, request: { id: 'r', host: registry.host, method: 'PUT', useragent: 'test' }, actor: {}, source: { addr: registry.host, instanceID: 'i' } }] });
    const answer = await fetch(`${server.url}/webhooks/distribution`, { method: 'POST', body, headers: { 'content-type': 'application/vnd.docker.distribution.events.v2+json', authorization: 'Bearer s3cret' } });
    assert.equal(answer.status, 202);
    const { jobs } = await answer.json() as { jobs: { id: string }[] };
    let job: { status: string; result?: { platforms: { executor?: string }[] }; lastError?: string } | undefined;
    for (let i = 0; i < 600; i++) {
      job = await (await fetch(`${server.url}/jobs/${jobs[0]!.id}`)).json() as typeof job;
      if (job?.status === 'succeeded' || job?.status === 'dead') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(job?.status, 'succeeded', JSON.stringify(job));
    assert.equal(job!.result!.platforms[0]!.executor, 'buildkit');
    const tags = JSON.parse((await run0('skopeo', ['list-tags', '--tls-verify=false', '--creds', `${credentials.username}:${credentials.password}`, `docker://${registry.host}/fixtures/bookworm`])).stdout) as { Tags: string[] };
    assert.ok(tags.Tags.includes('main-bk'), JSON.stringify(tags));
  } finally {
    server.child.kill('SIGTERM');
  }
});

async function writeServeConfig(dir: string, lines: string[]): Promise<string> {
  const path = join(dir, 'broken.yaml');
  await writeFile(path, ['server: { host: 127.0.0.1, port: 0 }', ...lines].join('\n'));
  return path;
}

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { startBuildkitd, type RunningBuildkitd } from '../harness/buildkitd.js';
import { pushNodeBaseImage } from '../harness/node-base-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { pushTinyImage } from '../harness/tiny-image.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// patchd's image as users get it: the repository's Dockerfile built by a real
// buildkitd with the Dockerfile frontend, on a Node.js 24 base laid out like
// node:24-bookworm-slim (assembled here: Docker Hub is not reachable), then
// unpacked by umoci and run by runc as the image says (uid 10001). The last
// test runs `patchd serve` in it with deploy/compose's files, behind a
// registry started from deploy/compose/registry-config.yml.

const repoRoot = new URL('../..', import.meta.url).pathname;
const composeDir = join(repoRoot, 'deploy/compose');
const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
  version: string; license: string; dependencies: Record<string, string>; devDependencies: Record<string, string>;
};

let registry: RunningRegistry;
let buildkitd: RunningBuildkitd;
let work: TempDir;
let layout: string | undefined;
let bundle: string | undefined;
const runcRoot = () => join(work.path, 'runc');
const containers = new Set<string>();
const children = new Set<ChildProcess>();

before(async () => {
  [registry, buildkitd, work] = await Promise.all([startRegistry(), startBuildkitd(), tmpDir('patchd-image-build')]);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const id of containers) await run('runc', ['--root', runcRoot(), 'delete', '--force', id], { allowFailure: true });
  await Promise.all([registry?.stop(), buildkitd?.stop()]);
  await work?.remove();
});

interface ImageConfig {
  config: {
    User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string;
    ExposedPorts?: Record<string, object>; Labels?: Record<string, string>;
  };
}

async function blob(digest: string): Promise<Buffer> {
  return readFile(join(layout!, 'blobs/sha256', digest.slice('sha256:'.length)));
}

interface RuntimeSpec {
  process: { args: string[]; env: string[]; terminal?: boolean; user: { uid: number; gid: number; additionalGids?: number[] } };
  mounts: { destination: string; type: string; source: string; options?: string[] }[];
  linux: { namespaces: { type: string }[] };
}

let containerCount = 0;

/** Starts the image's bundle under runc with `edit` applied to its config.json (as umoci made it); no terminal. */
async function startContainer(edit: (spec: RuntimeSpec) => void): Promise<{ id: string; child: ChildProcess; output: () => { stdout: string; stderr: string }; exited: Promise<number> }> {
  assert.ok(bundle, 'the image was unpacked by an earlier test');
  const specPath = join(bundle, 'config.json');
  const original = (await readFile(join(work.path, 'config.umoci.json'), 'utf8'));
  const spec = JSON.parse(original) as RuntimeSpec;
  spec.process.terminal = false;
  edit(spec);
  await writeFile(specPath, JSON.stringify(spec, null, 2));
  const id = `patchd-image-test-${process.pid}-${++containerCount}`;
  containers.add(id);
  const child = spawn('runc', ['--root', runcRoot(), 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => {
    children.delete(child);
    resolve(code ?? (signal ? -1 : 0));
  }));
  return { id, child, output: () => ({ stdout, stderr }), exited };
}

async function removeContainer(id: string): Promise<void> {
  await run('runc', ['--root', runcRoot(), 'delete', '--force', id], { allowFailure: true });
  containers.delete(id);
}

/** Runs `args` in the image to completion. */
async function runInImage(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const container = await startContainer((spec) => { spec.process.args = args; });
  const timer = setTimeout(() => container.child.kill('SIGKILL'), timeoutMs);
  try {
    const code = await container.exited;
    return { code, ...container.output() };
  } finally {
    clearTimeout(timer);
    await removeContainer(container.id);
  }
}

test('deploy/compose: patchd.yaml is a valid patchd config, and the registry notifies patchd with the secret patchd expects', async () => {
  const compose = parseYaml(await readFile(join(composeDir, 'compose.yaml'), 'utf8')) as {
    services: Record<string, { build?: { context?: string }; environment?: Record<string, string>; volumes?: string[]; user?: string; command?: string[] }>;
  };
  const patchd = compose.services.patchd;
  assert.ok(patchd, 'compose.yaml has a patchd service');
  assert.equal(join(composeDir, patchd.build?.context ?? '', '/'), join(repoRoot, '/'), 'patchd is built from the repository root (its Dockerfile)');
  assert.ok(patchd.volumes?.includes('./patchd.yaml:/etc/patchd/patchd.yaml:ro'), 'the config is mounted where the image\'s CMD reads it');
  const env = patchd.environment ?? {};
  const config = loadConfig(env, await readFile(join(composeDir, 'patchd.yaml'), 'utf8'), 'deploy/compose/patchd.yaml');
  assert.equal(config.server.host, '0.0.0.0', 'patchd listens beyond its container');
  assert.equal(config.dataDir, '/var/lib/patchd', 'the queue lives in the image\'s data directory (the patchd-data volume)');
  assert.ok(patchd.volumes?.some((v) => v.endsWith(':/var/lib/patchd')), 'the data directory is a volume');
  const local = config.registries.local;
  assert.ok(local, 'a registry named local');
  assert.equal(local.url, 'http://registry:5000', 'patchd reaches the compose registry by its service name');
  assert.ok(local.hosts.includes('localhost:5000'), 'pushes to the published port are patchd\'s to act on');
  assert.ok(local.webhookSecret, 'the webhook secret comes from compose.yaml\'s environment');

  const socketVolume = config.buildkit?.address.replace(/^unix:\/\//, '');
  assert.ok(socketVolume, 'patchd.yaml names the BuildKit socket');
  const buildkitd = compose.services.buildkitd;
  assert.ok(buildkitd?.command?.includes(`--addr=unix://${socketVolume}`), 'buildkitd listens on the socket patchd uses');
  assert.ok(buildkitd?.command?.includes('--oci-worker-no-process-sandbox'), 'rootless BuildKit without a process sandbox');
  const mountedDir = (service: { volumes?: string[] } | undefined) => service?.volumes?.find((v) => v.startsWith('buildkit-socket:'))?.split(':')[1];
  assert.equal(mountedDir(patchd), dirname(socketVolume), 'patchd mounts the socket volume where patchd.yaml looks');
  assert.equal(mountedDir(buildkitd), dirname(socketVolume), 'buildkitd mounts the socket volume at the same place');

  const registryConfig = parseYaml(await readFile(join(composeDir, 'registry-config.yml'), 'utf8')) as {
    notifications?: { endpoints?: { url: string; headers?: Record<string, string[]> }[] };
  };
  const endpoint = registryConfig.notifications?.endpoints?.[0];
  assert.equal(endpoint?.url, 'http://patchd:8080/webhooks/distribution', 'the registry notifies patchd\'s distribution webhook');
  assert.deepEqual(endpoint?.headers?.Authorization, [`Bearer ${local.webhookSecret}`], 'the registry sends the secret patchd checks');
  const buildkitdToml = await readFile(join(composeDir, 'buildkitd.toml'), 'utf8');
  assert.match(buildkitdToml, /^\[registry\."registry:5000"\]\n\s*http = true$/m, 'BuildKit pulls from the compose registry over plain HTTP');
});

test('the Dockerfile builds with BuildKit on a Node.js 24 bookworm-slim base', { timeout: 15 * 60_000 }, async () => {
  const started = Date.now();
  const base = await pushNodeBaseImage(registry.host);
  console.log(`node:24-bookworm-slim stand-in pushed: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  const buildctl = join(dirname((await run('bash', [join(repoRoot, 'scripts/build-buildkitd.sh')])).stdout.trim().split('\n').at(-1)!), 'buildctl-v0.32.2');
  const tar = join(work.path, 'patchd.tar');
  const building = Date.now();
  const { stderr } = await run(buildctl, [
    '--addr', buildkitd.address, 'build', '--progress', 'plain',
    '--frontend', 'dockerfile.v0', '--local', `context=${repoRoot}`, '--local', `dockerfile=${repoRoot}`,
    '--opt', `build-arg:NODE_IMAGE=${base.reference}`,
    '--opt', 'build-arg:SOURCE_URL=https://patchd.example/source',
    // This machine reaches the npm registry through a TLS-intercepting proxy whose CA is in the system bundle.
    '--secret', 'id=npm_ca,src=/etc/ssl/certs/ca-certificates.crt',
    '--output', `type=oci,dest=${tar},name=patchd:test`,
  ], { timeoutMs: 14 * 60_000 });
  console.log(`docker build (buildctl, dockerfile.v0): ${((Date.now() - building) / 1000).toFixed(1)}s`);

  // .dockerignore keeps node_modules, dist, .git, test fixtures and caches out of the context.
  const context = /load build context\n(?:#\d+ .*\n)*?#\d+ transferring context: ([\d.]+)([kMG]?B)/.exec(stderr);
  assert.ok(context, `the build log reports the context size:\n${stderr.slice(0, 3000)}`);
  const bytes = Number(context[1]) * ({ B: 1, kB: 1e3, MB: 1e6, GB: 1e9 } as Record<string, number>)[context[2]!]!;
  assert.ok(bytes < 10e6, `the build context is small (${context[1]}${context[2]}): .dockerignore keeps the rest out`);

  layout = join(work.path, 'oci');
  await mkdir(layout);
  await run('tar', ['-xf', tar, '-C', layout]);
});

test('the image: non-root, patchd serve as its command, labels, production dependencies only', async () => {
  assert.ok(layout, 'the build test produced the image');
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'test');
  assert.ok(entry, `the OCI layout has the tag test: ${JSON.stringify(index)}`);
  const manifest = JSON.parse((await blob(entry.digest)).toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  const image = JSON.parse((await blob(manifest.config.digest)).toString()) as ImageConfig;
  const c = image.config;
  assert.equal(c.User, '10001:10001', 'a numeric, non-root user (runAsNonRoot can check it)');
  assert.deepEqual(c.Entrypoint, ['node', '/app/bin/patchd.js'], 'the entrypoint is the CLI');
  assert.deepEqual(c.Cmd, ['serve', '--config', '/etc/patchd/patchd.yaml'], 'by default it serves with the mounted config');
  assert.deepEqual(Object.keys(c.ExposedPorts ?? {}).sort(), ['8080/tcp', '8443/tcp'], 'the HTTP and admission ports');
  assert.equal(c.WorkingDir, '/app', 'works in /app');
  assert.ok(c.Env?.includes('NODE_ENV=production'), 'NODE_ENV=production');
  const labels = c.Labels ?? {};
  assert.equal(labels['org.opencontainers.image.title'], 'patchd', 'title label');
  assert.equal(labels['org.opencontainers.image.licenses'], pkg.license, 'licenses label is package.json\'s');
  assert.equal(labels['org.opencontainers.image.version'], pkg.version, 'the Dockerfile\'s VERSION default is package.json\'s version (bump both)');
  assert.equal(labels['org.opencontainers.image.source'], 'https://patchd.example/source', 'the source label comes from SOURCE_URL');
  const compressed = manifest.layers.reduce((n, l) => n + l.size, 0);

  bundle = join(work.path, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:test`, bundle]);
  await writeFile(join(work.path, 'config.umoci.json'), await readFile(join(bundle, 'config.json')));
  const { stdout: du } = await run('du', ['-sb', join(bundle, 'rootfs')]);
  console.log(`image: ${manifest.layers.length} layers, ${(compressed / 1e6).toFixed(1)} MB compressed, ${(Number(du.split('\t')[0]) / 1e6).toFixed(1)} MB unpacked`);

  const app = join(bundle, 'rootfs/app');
  assert.deepEqual((await readdir(app)).sort(), ['bin', 'dist', 'node_modules', 'package.json'], '/app has what runs and nothing else (no src, no tests)');
  assert.ok(existsSync(join(app, 'dist/main.js')), 'the compiled CLI is there');
  for (const name of Object.keys(pkg.dependencies)) assert.ok(existsSync(join(app, 'node_modules', name, 'package.json')), `dependency ${name} is installed`);
  // What the lockfile marks dev-only (a devDependency such as @types/node may also be a dependency's dependency).
  const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages).filter(([path, p]) => p.dev && path.split('node_modules/').length === 2).map(([path]) => path.slice('node_modules/'.length));
  for (const name of ['typescript', 'tsx', 'esbuild']) assert.ok(devOnly.includes(name), `the lockfile has ${name} as dev-only`);
  const present = devOnly.filter((name) => existsSync(join(app, 'node_modules', name)));
  assert.deepEqual(present, [], 'no dev-only package is in the image');
});

test('runc runs the image as uid 10001: patchd --help, Node.js 24, writable data directory only', async () => {
  const spec = JSON.parse(await readFile(join(work.path, 'config.umoci.json'), 'utf8')) as RuntimeSpec;
  assert.equal(spec.process.user.uid, 10001, 'umoci took the user from the image: uid 10001');
  assert.equal(spec.process.user.gid, 10001, 'gid 10001');

  const help = await runInImage(['node', '/app/bin/patchd.js', '--help']);
  assert.equal(help.code, 0, `patchd --help exits 0: ${help.stderr}`);
  assert.match(help.stdout, /^patchd — patch container images without rebuilding them/, `the usage text: ${help.stdout.slice(0, 500)}`);
  assert.match(help.stdout, /patchd serve --config FILE/, 'the usage lists serve');

  const version = await runInImage(['node', '--version']);
  assert.equal(version.code, 0, `node --version exits 0: ${version.stderr}`);
  assert.match(version.stdout.trim(), /^v24\.\d+\.\d+$/, `Node.js 24: ${version.stdout}`);

  const probe = await runInImage(['node', '-e', `
    const fs = require('fs'), os = require('os');
    const writable = (p) => { try { fs.accessSync(p, fs.constants.W_OK); return true; } catch { return false; } };
    console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), user: os.userInfo().username, home: os.homedir(),
      data: writable('/var/lib/patchd'), tmp: writable('/tmp'), app: writable('/app'), dist: writable('/app/dist'), env: process.env.NODE_ENV }));
  `]);
  assert.equal(probe.code, 0, `the probe exits 0: ${probe.stderr}`);
  assert.deepEqual(JSON.parse(probe.stdout), {
    uid: 10001, gid: 10001, user: 'patchd', home: '/home/patchd', data: true, tmp: true, app: false, dist: false, env: 'production',
  }, 'non-root, its own data directory and /tmp writable, its code not');
});

test('patchd serve in the container: deploy/compose config, BuildKit socket, registry notifications, a job, a clean SIGTERM', { timeout: 5 * 60_000 }, async () => {
  // The registry as deploy/compose/registry-config.yml configures it (the real
  // distribution 2.8), with only its storage, address and patchd's address moved to this machine.
  const [registryPort, patchdPort] = [await freePort(), await freePort()];
  const registryConfig = parseYaml(await readFile(join(composeDir, 'registry-config.yml'), 'utf8')) as {
    storage: { filesystem: { rootdirectory: string } }; http: { addr: string }; notifications: { endpoints: { url: string }[] };
  };
  registryConfig.storage.filesystem.rootdirectory = join(work.path, 'registry-data');
  registryConfig.http.addr = `127.0.0.1:${registryPort}`;
  registryConfig.notifications.endpoints[0]!.url = `http://127.0.0.1:${patchdPort}/webhooks/distribution`;
  await writeFile(join(work.path, 'registry-config.yml'), stringifyYaml(registryConfig));
  const registryChild = spawn('/usr/bin/docker-registry', ['serve', join(work.path, 'registry-config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(registryChild);
  let registryLog = '';
  registryChild.stderr!.on('data', (d: Buffer) => { registryLog = (registryLog + d.toString()).slice(-8000); });
  const registryExited = new Promise<void>((resolve) => registryChild.on('close', () => { children.delete(registryChild); resolve(); }));
  const registryUrl = `http://127.0.0.1:${registryPort}`;

  // patchd.yaml as compose mounts it, pointed at that registry and a loopback port (no network namespace here).
  const config = parseYaml(await readFile(join(composeDir, 'patchd.yaml'), 'utf8')) as { server: object; registries: { local: { url: string } } };
  config.server = { host: '127.0.0.1', port: patchdPort };
  config.registries.local.url = registryUrl;
  await writeFile(join(work.path, 'patchd.yaml'), stringifyYaml(config));
  const composeEnv = (parseYaml(await readFile(join(composeDir, 'compose.yaml'), 'utf8')) as { services: { patchd: { environment: Record<string, string>; group_add?: string[] } } }).services.patchd;

  const container = await startContainer((spec) => {
    spec.process.args = ['node', '/app/bin/patchd.js', 'serve', '--config', '/etc/patchd/patchd.yaml'];
    spec.process.env.push(...Object.entries(composeEnv.environment).map(([k, v]) => `${k}=${v}`));
    // The test's buildkitd socket is root:root 0660: group 0 here is what group_add gives patchd in compose.
    spec.process.user.additionalGids = [0];
    spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network');
    spec.mounts.push(
      { destination: '/etc/patchd/patchd.yaml', type: 'bind', source: join(work.path, 'patchd.yaml'), options: ['rbind', 'ro'] },
      { destination: '/run/buildkit/buildkitd.sock', type: 'bind', source: buildkitd.socket, options: ['rbind'] },
    );
  });
  try {
    const base = `http://127.0.0.1:${patchdPort}`;
    const deadline = Date.now() + 60_000;
    let ready: { status?: string; registries?: Record<string, boolean> } = {};
    for (;;) {
      const res = await fetch(`${base}/readyz`).catch(() => undefined);
      if (res) ready = await res.json() as typeof ready;
      if (res?.status === 200) break;
      const exited = await Promise.race([container.exited, new Promise((r) => setTimeout(r, 250, undefined))]);
      assert.equal(exited, undefined, `patchd serve exited early: ${container.output().stderr.slice(-3000)}`);
      assert.ok(Date.now() < deadline, `patchd serve became ready in 60s: ${JSON.stringify(ready)} ${container.output().stderr.slice(-3000)}`);
    }
    assert.deepEqual(ready.registries, { local: true }, 'the registry answers patchd');
    assert.match(container.output().stderr, /"msg":"buildkit ready"/, `patchd reached buildkitd through the socket: ${container.output().stderr.slice(-2000)}`);

    // A push: the registry notifies patchd (compose's Authorization header), patchd queues and works it.
    const pushed = await pushTinyImage({ registryUrl, repository: 'demo/app', tag: '1.0', content: `image-build ${Date.now()}` });
    type Job = { id: string; status: string; repository: string; tag?: string; digest?: string; lastError?: string; result?: unknown };
    let job: Job | undefined;
    const jobDeadline = Date.now() + 90_000;
    for (;;) {
      const { jobs } = await (await fetch(`${base}/jobs`)).json() as { jobs: Job[] };
      job = jobs.find((j) => j.repository === 'demo/app');
      // A failed attempt goes back to the queue with its error: no need to wait for the retries.
      if (job && (!['queued', 'running'].includes(job.status) || job.lastError)) break;
      assert.ok(Date.now() < jobDeadline, `the push became a finished job in 90s: ${JSON.stringify(jobs)}\nregistry: ${registryLog.slice(-2000)}\npatchd: ${container.output().stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`job for the notified push: ${job.status} ${JSON.stringify(job.result ?? job.lastError ?? null).slice(0, 300)}`);
    assert.ok(job.tag === '1.0' || job.digest === pushed.digest, `the job is the pushed image: ${JSON.stringify(job)}`);
    assert.ok(['succeeded', 'skipped'].includes(job.status), `the job ran in the container without failing: ${JSON.stringify(job)}\n${container.output().stderr.slice(-3000)}`);

    const denied = await fetch(`${base}/webhooks/distribution`, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: '{"events":[]}' });
    assert.equal(denied.status, 401, 'a delivery without the secret is refused');

    await run('runc', ['--root', runcRoot(), 'kill', container.id, 'TERM']);
    const code = await Promise.race([container.exited, new Promise<string>((r) => setTimeout(r, 30_000, 'timeout'))]);
    assert.equal(code, 0, `SIGTERM to the container's PID 1 (node) stops patchd cleanly: ${container.output().stderr.slice(-2000)}`);
    assert.match(container.output().stderr, /shutting down/, 'patchd handled the signal itself');
  } finally {
    await removeContainer(container.id);
    registryChild.kill('SIGTERM');
    await registryExited;
  }
});

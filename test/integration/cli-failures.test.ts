import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type RunResult, type TempDir } from '../harness/tools.js';

// A failed `patchd patch` never exits 0 and never hangs: the real CLI against
// a real registry seen through a loopback proxy that damages a layer blob in
// flight, or disappears half way through one. The job fails with the root
// cause named, ends by itself, and pushes nothing.

const repoRoot = new URL('../..', import.meta.url).pathname;
const repository = 'failures/bookworm';
/** Far more than a failed run needs (a few seconds, plus the client's retries); a run that hangs is killed here and fails the test. */
const hangLimitMs = 240_000;
/** What "ends by itself" is held to: generous, the machine may be busy with other test runs. */
const boundMs = 150_000;

let registry: RunningRegistry;
let work: TempDir;
let layer: { digest: string; size: number };
const proxies: FaultProxy[] = [];

before(async () => {
  work = await tmpDir('patchd-cli-failures');
  registry = await startRegistry();
  const pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository, tag: 'main' });
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/main`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const manifest = (await res.json()) as { layers: { digest: string; size: number }[] };
  layer = manifest.layers.find((l) => l.digest === pushed.layerDigest)!;
  assert.ok(layer && layer.size > 1 << 20, `the fixture's layer is big enough to be cut or damaged half way (${JSON.stringify(layer)})`);
});

after(async () => {
  for (const proxy of proxies) await proxy.stop();
  await registry?.stop();
  await work?.remove();
});

async function proxy(): Promise<FaultProxy> {
  const started = await startFaultProxy({ target: registry.url });
  proxies.push(started);
  return started;
}

const isLayerGet = (req: { method: string; path: string }) => req.method === 'GET' && req.path.split('?')[0] === `/v2/${repository}/blobs/${layer.digest}`;

async function patch(host: string, name: string): Promise<RunResult & { ms: number }> {
  const started = Date.now();
  const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${host}/${repository}:main`, '--cache-dir', join(work.path, `cache-${name}`)], {
    allowFailure: true, timeoutMs: hangLimitMs,
  });
  return { ...result, ms: Date.now() - started };
}

async function tags(): Promise<string[]> {
  const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/${repository}`]);
  return (JSON.parse(stdout) as { Tags: string[] }).Tags;
}

test('a layer damaged in flight fails with BLOB_DIGEST_MISMATCH naming the layer, ends by itself, pushes nothing', async () => {
  const damaging = await proxy();
  // Every GET of the layer (the first and any retry or resumed range) has one byte flipped half way through its body.
  damaging.setPlan((req) => (isLayerGet(req) ? { kind: 'corrupt', atByte: Math.floor(layer.size / 2) } : undefined));

  const result = await patch(damaging.host, 'corrupt');

  assert.ok(damaging.log.some((r) => r.fault === 'corrupt'), `the layer went through the proxy damaged: ${JSON.stringify(damaging.log.map((r) => `${r.method} ${r.path}`))}`);
  assert.notEqual(result.code, 0, `exit code ${result.code}\n${result.stderr}`);
  assert.match(result.stderr, /\bBLOB_DIGEST_MISMATCH\b/, result.stderr);
  assert.ok(result.stderr.includes(layer.digest), `stderr names the layer ${layer.digest}:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /LAYER_INVALID|unexpected failure/, 'the root cause is reported, not the parse error it caused');
  assert.ok(result.ms < boundMs, `ended after ${result.ms} ms`);
  assert.deepEqual(await tags(), ['main']);
});

test('a registry that disappears half way through a layer fails the run with a clear error, in bounded time, pushing nothing', async () => {
  const vanishing = await proxy();
  let layerGets = 0;
  vanishing.setPlan((req) => {
    if (!isLayerGet(req)) return undefined;
    // The first download is cut half way; when the client comes back for the rest, the registry is gone for good.
    if (++layerGets === 1) return { kind: 'cut', afterBytes: Math.floor(layer.size / 2) };
    void vanishing.disappear();
    return { kind: 'stall', ms: 60_000 };
  });

  const result = await patch(vanishing.host, 'vanish');

  assert.ok(vanishing.log.some((r) => r.fault === 'cut'), `the layer download was cut: ${JSON.stringify(vanishing.log.map((r) => `${r.method} ${r.path}`))}`);
  assert.notEqual(result.code, 0, `exit code ${result.code}\n${result.stderr}`);
  assert.match(result.stderr, /^patchd: .+\[NETWORK\]$/m, result.stderr);
  assert.doesNotMatch(result.stderr, /unexpected failure/);
  assert.ok(result.ms < boundMs, `ended after ${result.ms} ms`);
  assert.deepEqual(await tags(), ['main']);
});

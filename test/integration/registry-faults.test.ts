import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startFaultProxy, type Fault, type FaultProxy, type ProxiedRequest } from '../harness/fault-proxy.js';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// The real CLI patches eight copies of the outdated bookworm fixture through a
// proxy that faults about one registry request in ten (a seeded, repeatable
// plan), and every kind of fault a registry connection suffers happens at
// least once: 503, 429 with Retry-After, a stall, a body cut off (a manifest;
// the base layer, which resumes with Range), the lost answer to the PUT that
// completes an upload. Every run must succeed, and every patched image must
// copy out of the registry itself (not through the proxy) with skopeo, which
// re-hashes every blob.
// Build first: `npx tsc -p tsconfig.build.json` (the CLI runs dist/).

const repoRoot = new URL('../..', import.meta.url).pathname;
const runs = 8;
const seed = 'patchd-registry-faults-1';
const rate = 0.1;
let registry: RunningRegistry;
let proxy: FaultProxy;
let work: TempDir;
let layerDigest: string;
const applied: { run: number; key: string; fault: Fault }[] = [];

const repository = (i: number) => `fixtures/faults-${i}`;

before(async () => {
  work = await tmpDir('patchd-registry-faults');
  registry = await startRegistry();
  const pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: repository(0), tag: 'main' });
  layerDigest = pushed.layerDigest;
  for (let i = 1; i < runs; i++) {
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests',
      `docker://${registry.host}/${repository(0)}:main`, `docker://${registry.host}/${repository(i)}:main`]);
  }
  proxy = await startFaultProxy({ target: registry.url });
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await work?.remove();
});

/** A number in [0, 1) fixed by the seed and the parts. */
function roll(...parts: (string | number)[]): number {
  return createHash('sha256').update([seed, ...parts].join('|')).digest().readUInt32BE(0) / 2 ** 32;
}

/** A request's identity across attempts: upload session ids and query strings left out. */
function keyOf(req: ProxiedRequest): string {
  const path = req.path.split('?')[0]!.replace(/\/blobs\/uploads\/[^/]+$/, '/blobs/uploads/*');
  return `${req.method} ${path}${req.method === 'PUT' && req.path.includes('digest=') ? ' (completing)' : ''}`;
}

const isManifestGet = (req: ProxiedRequest) => req.method === 'GET' && req.path.includes('/manifests/');
const throttled: Fault = { kind: 'status', status: 429, headers: { 'retry-after': '1' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' };
const unavailable: Fault = { kind: 'status', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}' };

/** Each of the first runs is sure to meet one kind of fault, at the first request it fits. */
const forced: ((req: ProxiedRequest) => Fault | undefined)[] = [
  () => unavailable,
  (req) => isManifestGet(req) ? throttled : undefined,
  (req) => isManifestGet(req) ? { kind: 'stall', ms: 2000 } : undefined,
  (req) => isManifestGet(req) ? { kind: 'cut', afterBytes: 64 } : undefined,
  (req) => req.method === 'GET' && req.path.endsWith(`/blobs/${layerDigest}`) ? { kind: 'cut', afterBytes: 1_000_000 } : undefined,
  (req) => req.method === 'PUT' && req.path.includes('digest=') ? { kind: 'lose-response' } : undefined,
];

/**
 * Run `runIndex`'s plan: its forced fault once, then about one request in
 * ten faulted. A request's third and later attempts are never faulted, so an
 * operation's retries (four attempts) always suffice.
 */
function planFor(runIndex: number): (req: ProxiedRequest) => Fault | undefined {
  const decide = decideFor(runIndex);
  return (req) => {
    const fault = decide(req);
    if (fault) applied.push({ run: runIndex, key: keyOf(req), fault });
    return fault;
  };
}

function decideFor(runIndex: number): (req: ProxiedRequest) => Fault | undefined {
  const seen = new Map<string, number>();
  let forcedDone = false;
  return (req) => {
    const key = keyOf(req);
    const occurrence = (seen.get(key) ?? 0) + 1;
    seen.set(key, occurrence);
    if (!forcedDone && occurrence === 1) {
      const fault = forced[runIndex]?.(req);
      if (fault) { forcedDone = true; return fault; }
    }
    if (occurrence > 2 || roll(runIndex, key, occurrence) >= rate) return undefined;
    const pick = roll(runIndex, key, occurrence, 'kind');
    if (req.method === 'GET' && pick < 0.3) return { kind: 'cut', afterBytes: 32 + Math.floor(roll(runIndex, key, occurrence, 'at') * 2_000_000) };
    if (pick < 0.45) return { kind: 'lose-response' };
    if (pick < 0.65) return unavailable;
    if (pick < 0.8) return throttled;
    return { kind: 'stall', ms: 300 + Math.floor(roll(runIndex, key, occurrence, 'ms') * 1200) };
  };
}

test(`${runs} patches through a proxy faulting ~${rate * 100}% of registry requests all succeed, and their images verify`, { timeout: 20 * 60_000 }, async () => {
  for (let i = 0; i < runs; i++) {
    proxy.setPlan(planFor(i));
    const started = Date.now();
    // A cache dir per run: each patch reads the base layer from the registry (with one shared, the scan cache would
    // answer for it after the first run, and the faults planned for its blob would never be met).
    const cache = join(work.path, `cache-${i}`);
    const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${proxy.host}/${repository(i)}:main`, '--cache-dir', cache],
      { allowFailure: true, timeoutMs: 5 * 60_000, env: { ...process.env, PATCHD_LOG_LEVEL: 'warn' } });
    const faults = proxy.log.filter((r) => r.fault).map((r) => `${r.fault} ${r.method} ${r.path.split('?')[0]}`);
    assert.equal(result.code, 0, `run ${i} failed (faults so far: ${faults.join('; ')}):\n${result.stderr.slice(-4000)}`);
    assert.match(result.stdout, new RegExp(`patched .* -> .*${repository(i)}:main-patched \\(sha256:[0-9a-f]{64}\\)`));
    console.log(`run ${i}: ${Date.now() - started} ms`);
  }

  // What the runs went through.
  const faulted = proxy.log.filter((r) => r.fault);
  const share = faulted.length / proxy.log.length;
  const kinds = new Map<string, number>();
  for (const { fault } of applied) { const k = fault.kind === 'status' ? String(fault.status) : fault.kind; kinds.set(k, (kinds.get(k) ?? 0) + 1); }
  console.log(`${faulted.length} of ${proxy.log.length} registry requests faulted (${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')})`);
  assert.ok(share >= 0.05 && share <= 0.25, `${faulted.length} of ${proxy.log.length} requests faulted`);
  const happened = (what: string, test: (f: Fault, key: string) => boolean) => assert.ok(applied.some((a) => test(a.fault, a.key)), `no ${what} happened`);
  happened('503', (f) => f.kind === 'status' && f.status === 503);
  happened('429 with Retry-After', (f) => f.kind === 'status' && f.status === 429 && f.headers?.['retry-after'] !== undefined);
  happened('stall', (f) => f.kind === 'stall');
  happened('cut mid manifest body', (f, key) => f.kind === 'cut' && f.afterBytes < 100 && key.startsWith('GET') && key.includes('/manifests/'));
  happened('cut mid base layer', (f, key) => f.kind === 'cut' && key === `GET /v2/${repository(4)}/blobs/${layerDigest}`);
  happened('lost answer to a completing PUT', (f, key) => f.kind === 'lose-response' && key.endsWith('(completing)'));
  assert.ok(proxy.log.some((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layerDigest}`) && typeof r.headers.range === 'string'),
    'the cut base layer was resumed with a Range request');
  const lostPuts = faulted.filter((r) => r.fault === 'lose-response' && r.method === 'PUT' && r.path.includes('digest='));
  assert.ok(lostPuts.length >= 1, 'a completing PUT lost its answer');
  for (const lost of lostPuts) {
    const url = lost.path.split('?')[0];
    assert.equal(proxy.log.filter((r) => r.method === 'PUT' && r.path.split('?')[0] === url).length, 1, `${url} was PUT again after its answer was lost`);
  }

  // Every patched image, straight from the registry: skopeo re-hashes each blob it copies.
  for (let i = 0; i < runs; i++) {
    const layout = join(work.path, `copy-${i}`);
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/${repository(i)}:main-patched`, `oci:${layout}:patched`]);
    const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/${repository(i)}:main-patched`]);
    const manifest = JSON.parse(stdout) as { layers: { digest: string }[] };
    assert.equal(manifest.layers.length, 2, `${repository(i)}: base layer plus one patch layer`);
    assert.equal(manifest.layers[0]!.digest, layerDigest);
  }
});

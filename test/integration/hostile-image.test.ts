import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { auditRegistry } from '../harness/registry-audit.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// Hostile layers in an image being patched: the job fails with a clear reason,
// nothing is pushed, and nothing outside the image is touched.

const repoRoot = new URL('../..', import.meta.url).pathname;
let registry: RunningRegistry;
let work: TempDir;

before(async () => {
  registry = await startRegistry();
  work = await tmpDir('patchd-hostile');
});
after(async () => {
  await registry?.stop();
  await work?.remove();
});

async function hostileTar(name: string, entries: { name: string; type?: 'file' | 'link' | 'symlink'; linkname?: string }[]): Promise<string> {
  const path = join(work.path, `${name}.tar`);
  const pack = tar.pack();
  pack.entry({ name: 'etc/os-release', mode: 0o644 }, 'ID=debian\n');
  for (const e of entries) {
    if ((e.type ?? 'file') === 'file') pack.entry({ name: e.name, mode: 0o644 }, 'x');
    else pack.entry({ name: e.name, type: e.type!, linkname: e.linkname ?? '' });
  }
  pack.finalize();
  await pipeline(pack, createWriteStream(path));
  return path;
}

for (const [name, entries, code] of [
  ['traversal', [{ name: '../../../tmp/patchd-owned' }], 'PATH_TRAVERSAL'],
  ['hardlink-escape', [{ name: 'etc/passwd-link', type: 'link', linkname: '../../etc/passwd' }], 'HARDLINK_ESCAPE'],
] as const) {
  test(`an image with a ${name} entry fails with ${code}, pushes nothing`, async () => {
    const tarPath = await hostileTar(name, [...entries]);
    await pushRootfsImage({ tarPath, registryHost: registry.host, repository: `hostile/${name}`, tag: 'main' });
    const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${registry.host}/hostile/${name}:main`, '--cache-dir', join(work.path, 'cache')], { allowFailure: true });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`\\[${code}\\]`));
    const { stdout } = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/hostile/${name}`]);
    assert.deepEqual(JSON.parse(stdout).Tags, ['main']);
  });
}

test('an image without a dpkg database is reported as not patchable, exit 0, nothing pushed', async () => {
  const tarPath = await hostileTar('plain', [{ name: 'usr/bin/app' }]);
  await pushRootfsImage({ tarPath, registryHost: registry.host, repository: 'plain/app', tag: 'main' });
  const result = await run('node', [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', `${registry.host}/plain/app:main`, '--cache-dir', join(work.path, 'cache')], { allowFailure: true });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /skipped: no dpkg or rpm database/);
  assert.match(result.stdout, /nothing patched in /);
});

// fast-check layer tars on top of the bookworm fixture, patched by a real `patchd serve`: absolute and
// `..` paths, hardlinks and symlinks to missing or outside targets, device files and FIFOs, duplicate
// and long names, huge pax headers, entries over dpkg's own files. Each job fails with a clear reason
// or succeeds with an image that verifies; nothing lands outside the image; the service keeps running.
// Bounded: at most 30 images or 100 s of fuzzing. FC_SEED=<n> replays a run.

const tarSeed = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);

interface OddEntry { name: string; type: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'; linkname?: string; pax?: number; body?: number }

/** `marker` makes each run's escape targets its own, so an escape is seen on disk. */
function oddEntries(marker: string): fc.Arbitrary<OddEntry[]> {
  const segment = fc.stringMatching(/^[a-z0-9._-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
  const normal = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('/'));
  const name = fc.oneof(
    { weight: 4, arbitrary: normal },
    { weight: 1, arbitrary: normal.map((n) => `/tmp/${marker}/${n}`) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }).map((n) => `${'../'.repeat(n)}tmp/${marker}`) },
    { weight: 1, arbitrary: fc.tuple(normal, fc.integer({ min: 101, max: 400 })).map(([n, len]) => `${n}/${'l'.repeat(len)}`) },
    { weight: 1, arbitrary: fc.constantFrom('var/lib/dpkg/status', 'var/lib/dpkg/info/libc6:amd64.list', 'etc/os-release', 'usr/lib/os-release', 'var/lib/dpkg', './', '.', 'dev/null', 'etc/../../escape') },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\0')) },
  );
  const linkname = fc.oneof(normal, fc.constantFrom('/etc/shadow', '../../../etc/passwd', `/tmp/${marker}`, 'does/not/exist', '', '.', '/'), fc.integer({ min: 1, max: 6 }).map((n) => `${'../'.repeat(n)}tmp/${marker}`));
  const entry: fc.Arbitrary<OddEntry> = fc.record({
    name,
    type: fc.constantFrom('file', 'file', 'directory', 'symlink', 'link', 'character-device', 'block-device', 'fifo'),
    linkname,
    pax: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1000, max: 2_000_000 }) }),
    body: fc.integer({ min: 0, max: 3000 }),
  });
  // Duplicates: some entries repeat an earlier name with another type.
  return fc.array(entry, { minLength: 1, maxLength: 12 }).chain((entries) => fc.array(fc.tuple(fc.nat(), entry), { maxLength: 3 }).map((dups) => [
    ...entries, ...dups.map(([i, e]) => ({ ...e, name: entries[i % entries.length]!.name })),
  ]));
}

async function tarOf(entries: readonly OddEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => { chunks.push(c as Buffer); });
  const done = new Promise<void>((resolve, reject) => { pack.on('end', resolve); pack.on('error', reject); });
  for (const e of entries) {
    const header: Partial<tar.Header> & { name: string } = { name: e.name, type: e.type, mode: e.type === 'directory' ? 0o755 : 0o644, ...(e.type === 'symlink' || e.type === 'link' ? { linkname: e.linkname ?? '' } : {}), ...(e.type.endsWith('-device') ? { devmajor: 1, devminor: 3 } : {}), ...(e.pax ? { pax: { comment: 'p'.repeat(e.pax) } } : {}) };
    await new Promise<void>((resolve, reject) => {
      if (e.type === 'file') pack.entry(header, Buffer.alloc(e.body ?? 0, 0x61), (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

test('fast-check layer tars with odd entries on top of a real image: each serve job fails with a clear reason or succeeds safely', { timeout: 4 * 60_000 }, async () => {
  const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const repository = 'hostile/fuzz';
  const base = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository, tag: 'base' });
  const baseManifest = await (await fetch(`${registry.url}/v2/${repository}/manifests/${base.digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json() as { layers: { mediaType: string; digest: string; size: number }[]; config: { digest: string } };
  const baseConfig = await (await fetch(`${registry.url}/v2/${repository}/blobs/${baseManifest.config.digest}`)).json() as { rootfs: { diff_ids: string[] } };
  const upload = async (data: Buffer) => {
    const digest = sha256(data);
    const start = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    await start.arrayBuffer();
    const location = new URL(start.headers.get('location')!, registry.url);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.status, 201, `blob upload: ${await put.text()}`);
    return { digest, size: data.length };
  };
  const server = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'fuzz-data'))}`, `cacheDir: ${JSON.stringify(join(work.path, 'fuzz-cache'))}`,
      'worker: { concurrency: 1, maxAttempts: 1 }', 'registries:', `  local: { url: "${registry.url}", webhookSecret: "s3cret" }`,
    ],
  });
  after(() => server.stop());
  console.log(`fast-check seed ${tarSeed} (replay: FC_SEED=${tarSeed})`);
  const outcomes = new Map<string, number>();
  const succeeded: string[] = [];
  let run = 0;
  const marker = () => `patchd-fuzz-${tarSeed}-${run}`;
  const started = Date.now();
  await fc.assert(fc.asyncProperty(fc.nat().chain(() => oddEntries(`patchd-fuzz-${tarSeed}-${run + 1}`)), async (entries) => {
    run++;
    const tag = `t${run}`;
    let layerTar: Buffer;
    try { layerTar = await tarOf(entries); } catch { return; } // what tar-stream itself refuses to write is no layer
    const layer = await upload(gzipSync(layerTar));
    const config = await upload(Buffer.from(JSON.stringify({ ...baseConfig, rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, sha256(layerTar)] }, history: undefined })));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [baseManifest.layers[0], { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }));
    const put = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, { method: 'PUT', body: new Uint8Array(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(put.status, 201, `manifest push: ${await put.text()}`);
    const res = await fetch(`${server.url}/webhooks/distribution`, {
      method: 'POST', headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
      body: JSON.stringify({ events: [{ action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository, digest: sha256(manifest), tag }, request: { host: registry.host, useragent: 'docker/27' } }] }),
    });
    const { jobs } = await res.json() as { jobs: { id: string }[] };
    assert.equal(res.status, 202, 'delivery accepted');
    let job: { status: string; lastError?: string; result?: { reason?: string } } | undefined;
    for (const deadline = Date.now() + 90_000; Date.now() < deadline;) {
      job = await (await fetch(`${server.url}/jobs/${jobs[0]!.id}`)).json() as typeof job;
      if (job!.status !== 'queued' && job!.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const summary = `seed ${tarSeed}, run ${run}, entries ${JSON.stringify(entries.map((e) => ({ ...e, name: e.name.slice(0, 120) })))}: ${JSON.stringify(job)}`;
    assert.ok(job && ['dead', 'skipped', 'succeeded'].includes(job.status), `the job finished: ${summary}`);
    if (job.status === 'dead') {
      assert.match(job.lastError ?? '', /^[A-Z][A-Z_]+: \S/, `a coded, worded error: ${summary}`);
      assert.doesNotMatch(job.lastError ?? '', /^INTERNAL:/, `not an internal error (a bug): ${summary}`);
    }
    if (job.status === 'skipped') assert.ok((job.result?.reason ?? '').length > 0, `a skip says why: ${summary}`);
    if (job.status === 'succeeded') succeeded.push(tag);
    assert.ok(!existsSync(`/tmp/${marker()}`), `nothing was written outside the image: ${summary}`);
    assert.equal(server.child.exitCode, null, `patchd serve still runs: ${summary}`);
    const outcome = job.status === 'dead' ? job.lastError!.split(':')[0]! : job.status;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }), { numRuns: 30, seed: tarSeed, endOnFailure: true, interruptAfterTimeLimit: 100_000 });
  console.log(`${run} layers in ${Date.now() - started} ms: ${[...outcomes].map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  assert.ok(run >= 8, `enough layers were tried (${run})`);
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'the service still answers');
  // What was patched verifies, from the registry itself.
  const audit = await auditRegistry(registry.url);
  assert.deepEqual(audit.problems, [], 'everything in the registry verifies');
  for (const tag of succeeded) assert.ok(audit.tags.get(repository)?.includes(`${tag}-patched`), `${tag}: patched tag pushed`);
});

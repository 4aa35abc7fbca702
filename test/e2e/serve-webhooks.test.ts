import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bookwormRootfsTar, pushRootfsImage } from '../harness/fixture-image.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { freePort, run, tmpDir, type TempDir } from '../harness/tools.js';

// patchd serve end to end: a real docker-registry notifies patchd of a push;
// `<tag>-patched` appears; one job for the digest, none for our own push.

let work: TempDir;
let registry: RunningRegistry;
let patchd: ChildProcess;
let patchdUrl: string;
let exited: Promise<number | null>;

before(async () => {
  work = await tmpDir('patchd-serve');
  const registryPort = await freePort();
  const server = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      'worker: { concurrency: 1, retryBaseMs: 500 }',
      'registries:',
      '  local:',
      `    url: http://127.0.0.1:${registryPort}`,
      `    hosts: ["127.0.0.1:${registryPort}"]`,
      '    webhookSecret: change-me',
    ],
    env: { PATCHD_LOCAL_WEBHOOK_SECRET: 's3cret' },
    logs: 'inherit',
  });
  patchd = server.child;
  exited = server.exited;
  patchdUrl = server.url;
  registry = await startRegistry({ port: registryPort, notifications: { url: `${patchdUrl}/webhooks/distribution`, headers: { Authorization: ['Bearer s3cret'] } } });
});

after(async () => {
  if (patchd && patchd.exitCode === null) patchd.kill('SIGKILL');
  await registry?.stop();
  await work?.remove();
});

interface Job { id: string; repository: string; tag?: string; digest?: string; status: string; result?: { target?: string; reason?: string; evidence?: { sbom?: { digest: string }[]; error?: string } } }

test('a push notified by the registry is patched once; our own push is ignored', { timeout: 10 * 60_000 }, async () => {
  const pushed = await pushRootfsImage({ tarPath: await bookwormRootfsTar(), registryHost: registry.host, repository: 'fixtures/bookworm', tag: 'main' });
  let tags: string[] = [];
  for (let i = 0; i < 600 && !tags.includes('main-patched'); i++) {
    await new Promise((r) => setTimeout(r, 500));
    tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/fixtures/bookworm`])).stdout).Tags;
  }
  assert.ok(tags.includes('main-patched'), `tags: ${tags.join(', ')}`);
  // The registry also notifies patchd of its own -patched push: give it time to arrive.
  let metrics = '';
  for (let i = 0; i < 100 && !/outcome="ignored"/.test(metrics); i++) {
    await new Promise((r) => setTimeout(r, 200));
    metrics = await (await fetch(`${patchdUrl}/metrics`)).text();
  }
  assert.match(metrics, /patchd_webhooks_total\{outcome="ignored",source="distribution"\} \d+/);

  // The job ends after the tag appears (its evidence is attached after the push): wait for the queue to settle.
  let all: Job[] = [];
  for (let i = 0; i < 600; i++) {
    all = (await (await fetch(`${patchdUrl}/jobs`)).json() as { jobs: Job[] }).jobs;
    if (all.every((j) => j.status !== 'queued' && j.status !== 'running')) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  // What patchd pushes itself (the patched manifest by digest before its tag, the VEX and SBOM referrers) is notified
  // too, and recognised by patchd's User-Agent: no job for any of it.
  const jobs = all;
  assert.equal(jobs.length, 1, `one job, for the pushed tag: ${JSON.stringify(jobs)}`);
  assert.equal(jobs[0]!.digest, pushed.digest);
  assert.equal(jobs[0]!.status, 'succeeded');
  assert.match(jobs[0]!.result?.target ?? '', /fixtures\/bookworm:main-patched$/);
  assert.equal(jobs[0]!.result?.evidence?.sbom?.length, 1, `the job result names the SBOM referrer: ${JSON.stringify(jobs[0]!.result?.evidence)}`);
  const one = await (await fetch(`${patchdUrl}/jobs/${jobs[0]!.id}`)).json() as Job;
  assert.equal(one.id, jobs[0]!.id);
  const ready = await fetch(`${patchdUrl}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual((await ready.json() as { registries: Record<string, boolean> }).registries, { local: true });
});

test('SIGTERM stops the service cleanly', async () => {
  patchd.kill('SIGTERM');
  assert.equal(await exited, 0);
});

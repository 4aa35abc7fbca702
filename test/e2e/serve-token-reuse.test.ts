import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pushRootfsImage } from '../harness/fixture-image.js';
import { startPatchdServe, type RunningPatchd } from '../harness/patchd-serve.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startTokenServer, type TokenServer } from '../harness/token-server.js';
import { run, tmpDir, type TempDir } from '../harness/tools.js';

// patchd serve keeps one registry client per configured registry: a registry
// with token auth is asked for a token once per scope, not once per job.
// Six tiny images (no package database: each job reads manifest, config and
// layer with auth, then ends skipped) under six tags of one repository.

const tags = ['t1', 't2', 't3', 't4', 't5', 't6'];
const finished = new Set(['succeeded', 'skipped', 'dead']);
let work: TempDir;
let tokens: TokenServer;
let registry: RunningRegistry;
let patchd: RunningPatchd;

interface Job { id: string; tag?: string; status: string; lastError?: string; result?: { reason?: string } }

before(async () => {
  work = await tmpDir('patchd-token-reuse');
  // The fixture pusher and patchd use different accounts, so the token requests are told apart.
  tokens = await startTokenServer({ users: { pusher: 'push-pass', robot: 't0ken' } });
  registry = await startRegistry({ token: tokens.registryAuth() });
  for (const tag of tags) {
    const root = join(work.path, `root-${tag}`);
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'hello.txt'), `image ${tag}\n`);
    const tar = join(work.path, `${tag}.tar`);
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
    await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'tiny/app', tag, creds: { username: 'pusher', password: 'push-pass' } });
  }
  patchd = await startPatchdServe({
    dir: work.path,
    config: () => [
      `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
      'worker: { concurrency: 2, retryBaseMs: 200 }',
      'registries:',
      `  local: { url: "${registry.url}", webhookSecret: s3cret, credentials: { username: robot, password: t0ken } }`,
    ],
    logs: 'inherit',
  });
});

after(async () => {
  await patchd?.stop();
  await registry?.stop();
  await tokens?.stop();
  await work?.remove();
});

async function deliver(tag: string): Promise<string> {
  const body = JSON.stringify({ events: [{
    id: `e-${tag}`, action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'tiny/app', tag },
    request: { host: registry.host, method: 'PUT' },
  }] });
  const res = await fetch(`${patchd.url}/webhooks/distribution`, { method: 'POST', body, headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' } });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { jobs: { id: string }[] }).jobs[0]!.id;
}

async function waitForJobs(ids: readonly string[]): Promise<Job[]> {
  let jobs: Job[] = [];
  for (let i = 0; i < 600; i++) {
    jobs = ((await (await fetch(`${patchd.url}/jobs?limit=100`)).json()) as { jobs: Job[] }).jobs.filter((j) => ids.includes(j.id));
    if (jobs.length === ids.length && jobs.every((j) => finished.has(j.status))) return jobs;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`jobs did not finish: ${JSON.stringify(jobs)}`);
}

const robotTokenRequests = () => tokens.requests.filter((r) => r.authorization === `Basic ${Buffer.from('robot:t0ken').toString('base64')}`);

test('one token per scope for all jobs of a registry, not one per job', { timeout: 5 * 60_000 }, async () => {
  const first = await deliver(tags[0]!);
  const [firstJob] = await waitForJobs([first]);
  assert.equal(firstJob!.status, 'skipped', JSON.stringify(firstJob));
  assert.match(JSON.stringify(firstJob!.result), /no dpkg or rpm database/, 'the job read the image (config and layer) before skipping it');
  const afterFirst = robotTokenRequests().length;
  assert.ok(afterFirst >= 1, 'the first job fetched a token');

  const rest = [];
  for (const tag of tags.slice(1)) rest.push(await deliver(tag));
  const jobs = await waitForJobs(rest);
  assert.deepEqual(jobs.map((j) => j.status), rest.map(() => 'skipped'), JSON.stringify(jobs));
  assert.ok(jobs.every((j) => /no dpkg or rpm database/.test(JSON.stringify(j.result))), JSON.stringify(jobs));
  assert.equal(robotTokenRequests().length, afterFirst, `token requests after the first job: ${afterFirst}, after all ${tags.length}: ${robotTokenRequests().length}`);
});

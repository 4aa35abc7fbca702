import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { startPatchdServe } from '../harness/patchd-serve.js';
import { freePort, tmpDir, type TempDir } from '../harness/tools.js';

// Durability: 1,000 webhooks over loopback, `kill -9` of patchd midway,
// restart on the same data dir; every delivery that was acknowledged (202)
// ends as exactly one finished job.

const total = 1000;
let work: TempDir;
let registry: RunningRegistry;
let port: number;
let url: string;
let child: ChildProcess | undefined;

before(async () => {
  work = await tmpDir('patchd-crash');
  registry = await startRegistry();
  port = await freePort();
});
after(async () => {
  child?.kill('SIGKILL');
  await registry?.stop();
  await work?.remove();
});

/** Same port and data dir each time: a restart after a crash. */
async function startPatchd(): Promise<ChildProcess> {
  const server = await startPatchdServe({
    dir: work.path, port,
    config: () => [`dataDir: ${JSON.stringify(join(work.path, 'data'))}`, 'worker: { concurrency: 2 }', 'registries:', `  local: { url: "${registry.url}", webhookSecret: "s3cret" }`],
  });
  url = server.url;
  return server.child;
}

function delivery(i: number): string {
  return JSON.stringify({ events: [{
    id: `e${i}`, action: 'push',
    target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'crash/app', tag: `t${i}` },
    request: { host: registry.host, method: 'PUT' },
  }] });
}

test(`${total} webhooks, kill -9 midway, restart: every acknowledged delivery completes exactly once`, { timeout: 5 * 60_000 }, async () => {
  child = await startPatchd();
  const accepted = new Map<number, string>();
  for (let i = 0; i < total; i++) {
    if (i === total / 2) {
      child.kill('SIGKILL');
      await new Promise((r) => child!.once('exit', r));
      child = await startPatchd();
    }
    const res = await fetch(`${url}/webhooks/distribution`, { method: 'POST', body: delivery(i), headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' } }).catch(() => undefined);
    if (res?.status === 202) accepted.set(i, ((await res.json()) as { jobs: { id: string }[] }).jobs[0]!.id);
    else await res?.body?.cancel();
  }
  assert.equal(accepted.size, total, 'every delivery was acknowledged (the kill happened between deliveries)');

  interface Job { id: string; tag: string; status: string; attempts: number }
  let jobs: Job[] = [];
  for (let i = 0; i < 600; i++) {
    jobs = ((await (await fetch(`${url}/jobs?limit=1000`)).json()) as { jobs: Job[] }).jobs;
    if (jobs.length === total && jobs.every((j) => j.status === 'skipped')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(jobs.length, total, 'one job per delivery, none lost, none doubled');
  assert.deepEqual(new Set(jobs.map((j) => j.id)), new Set(accepted.values()));
  assert.deepEqual(jobs.filter((j) => j.status !== 'skipped'), [], 'all finished (the tags do not exist: each job ends skipped)');
  assert.ok(jobs.every((j) => j.attempts <= 2), 'a job cut short by the kill runs once more, never more');
});

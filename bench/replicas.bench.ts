// Benchmark (on demand: `npm run bench:replicas`): push→patched latency of
// `patchd serve` at 1, 10 and 50 concurrent pushes, for one replica on SQLite,
// one on Redis and three on one Redis; and webhook acks per second on SQLite
// vs Redis. A push is the smallest image patchd really patches (a vulnerable
// global npm package, fixed from a loopback npm registry; test/harness/npm-library-image.ts)
// pushed to a real docker-registry, then its distribution notification sent to
// one replica (round robin); patched is the job's finishedAt, after the
// `<tag>-patched` manifest is in the registry. Worker concurrency 2 per
// replica, all on this one machine. Prints a table; asserts nothing.
import { join } from 'node:path';
import { pushLibraryImage, startLibraryFixture } from '../test/harness/npm-library-image.js';
import { startPatchdServe, type RunningPatchd } from '../test/harness/patchd-serve.js';
import { startRedis, type RunningRedis } from '../test/harness/redis.js';
import { startRegistry } from '../test/harness/registry.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;
const levels = [1, 10, 50];
/** Samples per concurrency level: rounds of `level` pushes until at least this many. */
const minSamples = 30;
const work = await tmpDir('patchd-replicas-bench');
const registry = await startRegistry();
const library = await startLibraryFixture(work.path);

type Queue = 'sqlite' | 'redis';
let serial = 0;

async function startReplicas(count: number, queue: Queue, registryLines: string[]): Promise<{ replicas: RunningPatchd[]; stop(): Promise<void> }> {
  const redis: RunningRedis | undefined = queue === 'redis' ? await startRedis() : undefined;
  const id = serial++;
  const replicas: RunningPatchd[] = [];
  for (let i = 0; i < count; i++) {
    replicas.push(await startPatchdServe({
      dir: work.path,
      config: () => [
        `dataDir: ${JSON.stringify(join(work.path, `data-${id}-${i}`))}`,
        ...(redis ? [`queue: { redis: { url: ${JSON.stringify(redis.url)} } }`] : []),
        'worker: { concurrency: 2 }',
        `advisories: { osv: [${JSON.stringify(library.osvDir)}] }`,
        `libraryIndex: { npm: ${JSON.stringify(library.npmUrl)} }`,
        'continuous: { watchAdvisories: false }',
        'registries:',
        ...registryLines,
      ],
    }));
  }
  return {
    replicas,
    async stop() {
      await Promise.all(replicas.map((r) => r.stop()));
      await redis?.stop();
    },
  };
}

interface Job { id: string; status: string; finishedAt?: string }

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** Push→patched latencies (ms) for `level` concurrent pushes, in rounds. */
async function latencies(replicas: RunningPatchd[], level: number, label: string): Promise<number[]> {
  const samples: number[] = [];
  for (let round = 0; samples.length < minSamples; round++) {
    const started = await Promise.all(Array.from({ length: level }, async (_, i) => {
      // A repository per push: docker-registry's filesystem storage races on one blob pushed into one repository at once.
      const repository = `bench/${label}-c${level}-r${round}-${i}`;
      const t0 = Date.now();
      const tag = `t${i}`;
      const { digest } = await pushLibraryImage({ registryUrl: registry.url, repository, tag, content: `${repository} ${i}` });
      const replica = replicas[i % replicas.length]!;
      const res = await fetch(`${replica.url}/webhooks/distribution`, {
        method: 'POST',
        headers: { authorization: 'Bearer s3cret', 'content-type': 'application/vnd.docker.distribution.events.v1+json' },
        body: JSON.stringify({ events: [{ id: `${repository}-${i}`, action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository, digest, tag }, request: { host: registry.host, method: 'PUT' } }] }),
      });
      if (res.status !== 202) throw new Error(`delivery answered ${res.status}: ${await res.text()}`);
      const id = ((await res.json()) as { jobs: { id: string }[] }).jobs[0]!.id;
      return { t0, id };
    }));
    const pending = new Map(started.map((s) => [s.id, s.t0]));
    const deadline = Date.now() + 300_000;
    while (pending.size > 0) {
      if (Date.now() > deadline) throw new Error(`${pending.size} jobs not finished after 300 s`);
      await new Promise((r) => setTimeout(r, 50));
      const jobs = ((await (await fetch(`${replicas[0]!.url}/jobs?limit=1000`)).json()) as { jobs: Job[] }).jobs;
      for (const job of jobs) {
        const t0 = pending.get(job.id);
        if (t0 === undefined || job.status === 'queued' || job.status === 'running') continue;
        if (job.status !== 'succeeded') throw new Error(`job ${job.id} ended ${job.status}`);
        samples.push(Date.parse(job.finishedAt!) - t0);
        pending.delete(job.id);
      }
    }
  }
  return samples.sort((a, b) => a - b);
}

/** Webhook acks per second for one replica: autocannon from a second process (bench/webhook-load.ts), 32 connections. */
async function acks(queue: Queue): Promise<{ perSecond: number; p50: number; p99: number; non2xx: number }> {
  // The registry host is configured but nothing answers there: the worker finds nothing, the figures are the receive path.
  const { replicas: [server], stop } = await startReplicas(1, queue, ['  local: { url: "http://127.0.0.1:9", hosts: ["bench.registry:5000"], webhookSecret: "s3cret" }']);
  try {
    const load = (seconds: number) => run('node', ['--import', 'tsx', join(repoRoot, 'bench/webhook-load.ts'), `${server!.url}/webhooks/distribution`, 's3cret', 'bench.registry:5000', String(seconds), '32'], { cwd: repoRoot });
    await load(3); // warm-up
    const r = JSON.parse((await load(10)).stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number };
    return { perSecond: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx };
  } finally {
    await stop();
  }
}

const rows: string[] = [];
try {
  const setups: { label: string; count: number; queue: Queue }[] = [
    { label: 'sqlite-1', count: 1, queue: 'sqlite' },
    { label: 'redis-1', count: 1, queue: 'redis' },
    { label: 'redis-3', count: 3, queue: 'redis' },
  ];
  for (const setup of setups) {
    const { replicas, stop } = await startReplicas(setup.count, setup.queue, [
      '  local:', `    url: ${JSON.stringify(registry.url)}`, '    webhookSecret: s3cret', '    policy: { pkgTypes: [library], evidence: false }',
    ]);
    try {
      await latencies(replicas, 1, `${setup.label}-warm`); // first patches pay for module loading and connections
      for (const level of levels) {
        const s = await latencies(replicas, level, setup.label);
        rows.push(`| ${setup.count} × ${setup.queue} | ${level} | ${s.length} | ${percentile(s, 50)} | ${percentile(s, 95)} | ${s.at(-1)} |`);
        console.error(`progress: ${rows.at(-1)}`);
      }
    } finally {
      await stop();
    }
  }
  const ackRows: string[] = [];
  for (const queue of ['sqlite', 'redis'] as const) {
    const a = await acks(queue);
    ackRows.push(`| ${queue} | ${a.perSecond} | ${a.p50} | ${a.p99} | ${a.non2xx} |`);
    console.error(`progress: ${ackRows.at(-1)}`);
  }
  console.log('push→patched latency, ms (push of a one-package image to docker-registry, delivery to a replica, job finished; worker concurrency 2 per replica)');
  console.log('| replicas × queue | concurrent pushes | samples | p50 | p95 | max |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
  console.log('');
  console.log('webhook acks, one replica (distribution notifications, 32 connections, 10 s, every request a new digest)');
  console.log('| queue | acks/s | p50 ms | p99 ms | non-2xx |');
  console.log('|---|---|---|---|---|');
  for (const row of ackRows) console.log(row);
} finally {
  await library.close();
  await registry.stop();
  await work.remove();
}

// Benchmark (on demand: `npm run bench:webhooks`): accepted webhooks per second
// and ack latency (p50, p99) of `patchd serve` with its durable SQLite enqueue,
// under loopback load from a second process. The worker runs but finds nothing
// to fetch (the registry host is configured, the images do not exist), so the
// figures are the receive path. Prints figures; asserts nothing.
import { join } from 'node:path';
import { startPatchdServe } from '../test/harness/patchd-serve.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;
const work = await tmpDir('patchd-webhook-bench');
const server = await startPatchdServe({
  dir: work.path,
  config: () => [
    `dataDir: ${JSON.stringify(join(work.path, 'data'))}`,
    'worker: { concurrency: 1 }',
    'registries:',
    '  local: { url: "http://127.0.0.1:9", hosts: ["bench.registry:5000"], webhookSecret: "s3cret" }',
  ],
});
try {
  const load = (seconds: number) => run('node', ['--import', 'tsx', join(repoRoot, 'bench/webhook-load.ts'), `${server.url}/webhooks/distribution`, 's3cret', 'bench.registry:5000', String(seconds), '32'], { cwd: repoRoot });
  await load(3); // warm-up
  const { stdout } = await load(15);
  const r = JSON.parse(stdout) as { requests: { average: number; total: number }; latency: { p50: number; p99: number; p90: number; max: number }; non2xx: number; errors: number; statusCodeStats: Record<string, { count: number }> };
  console.log('patchd serve: distribution webhooks, 32 connections, 15 s, durable SQLite enqueue (WAL)');
  console.log(`accepted (202) per second: ${Math.round(r.requests.average)}   total: ${r.requests.total}   non-2xx: ${r.non2xx}   errors: ${r.errors}`);
  console.log(`ack latency: p50 ${r.latency.p50} ms   p90 ${r.latency.p90} ms   p99 ${r.latency.p99} ms   max ${r.latency.max} ms`);
  console.log(`status codes: ${JSON.stringify(r.statusCodeStats)}`);
} finally {
  server.child.kill('SIGTERM');
  await work.remove();
}

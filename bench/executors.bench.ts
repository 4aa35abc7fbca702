// Benchmark (run on demand: `npm run bench:executors`): the bookworm fixture
// patched by the in-process executor and by the BuildKit executor (a real
// buildkitd, cold and warm), and by Copa driving the same buildkitd when a
// `copa` binary is on PATH: wall time and patch layer size. Prints figures.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBuildkitd } from '../test/harness/buildkitd.js';
import { bookwormRootfsTar, pushRootfsImage } from '../test/harness/fixture-image.js';
import { startRegistry } from '../test/harness/registry.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;
const registry = await startRegistry();
const buildkitd = await startBuildkitd();
const scratch = await tmpDir('patchd-exec-bench');

async function timed(label: string, command: string, args: string[], layerOf: () => Promise<number>): Promise<void> {
  const timeFile = join(scratch.path, 'time.txt');
  const result = await run('/usr/bin/time', ['-o', timeFile, '-f', '%e %M', command, ...args], { cwd: repoRoot, allowFailure: true });
  const [seconds, rssKiB] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  if (result.code !== 0) { console.log(`${label.padEnd(36)} failed: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`); return; }
  console.log(`${label.padEnd(36)} ${seconds!.toFixed(2).padStart(7)} s  ${String(Math.round(rssKiB! / 1024)).padStart(5)} MiB RSS (client)  ${(await layerOf() / 1e6).toFixed(2).padStart(6)} MB patch layer`);
}

const repo = () => `${registry.host}/bench/bookworm`;
const lastLayerSize = (ref: string) => async () => {
  const m = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as { layers: { size: number }[] };
  return m.layers.at(-1)!.size;
};

try {
  const tar = await bookwormRootfsTar();
  await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'bench/bookworm', tag: 'main' });
  const image = `${registry.host}/bench/bookworm:main`;
  const cache = join(scratch.path, 'cache');
  const node = (tag: string, extra: string[]) => [join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '-t', tag, '--cache-dir', cache, ...extra];
  console.log(`bookworm fixture, 10 upgrades; buildkitd ${buildkitd.address}`);
  await timed('in-process (cold caches)', 'node', node('inproc-1', ['--executor', 'inprocess']), lastLayerSize(`${repo()}:inproc-1`));
  await timed('in-process (warm caches)', 'node', node('inproc-2', ['--executor', 'inprocess']), lastLayerSize(`${repo()}:inproc-2`));
  await timed('buildkit (cold daemon)', 'node', node('bk-1', ['--executor', 'buildkit', '--buildkit-addr', buildkitd.address]), lastLayerSize(`${repo()}:bk-1`));
  await timed('buildkit (warm daemon cache)', 'node', node('bk-2', ['--executor', 'buildkit', '--buildkit-addr', buildkitd.address]), lastLayerSize(`${repo()}:bk-2`));
  const copa = await run('sh', ['-c', 'command -v copa || ls "$(go env GOPATH)/bin/copa" 2>/dev/null'], { allowFailure: true });
  const copaPath = copa.stdout.trim().split('\n')[0];
  if (copaPath) {
    await timed('copa v0.14.2, same buildkitd', copaPath, ['patch', '-i', image, '-t', 'copa', '--addr', buildkitd.address, '--timeout', '20m'], lastLayerSize(`${repo()}:copa`));
  } else {
    console.log('copa: not installed (go install github.com/project-copacetic/copacetic@v0.14.2)');
  }
} finally {
  await scratch.remove();
  await Promise.all([registry.stop(), buildkitd.stop()]);
}

// Benchmark (run on demand: `npm run bench`): `patchd patch` on the bookworm
// fixture — wall time cold and warm (apt index cache), bytes downloaded, patch
// layer size, peak RSS — and the same on a copy of the fixture carrying an
// extra 1 GiB of incompressible data, to show memory does not grow with image
// size. Prints figures; asserts nothing.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bookwormRootfsTar, pushRootfsImage } from '../test/harness/fixture-image.js';
import { startRegistry } from '../test/harness/registry.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;

interface Measured { seconds: number; peakRssMiB: number; bytesDownloaded: number; layerBytes: number }

async function patchOnce(image: string, cacheDir: string, scratch: string): Promise<Measured> {
  const timeFile = join(scratch, 'time.txt');
  const result = await run('/usr/bin/time', ['-o', timeFile, '-f', '%e %M', 'node', join(repoRoot, 'bin/patchd.js'), 'patch', '-i', image, '--cache-dir', cacheDir], { cwd: repoRoot });
  const [seconds, rssKiB] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  const done = result.stderr.split('\n').filter((l) => l.includes('"msg":"done"')).map((l) => JSON.parse(l) as { outcome: { bytesDownloaded: number; platforms: { layer?: { size: number } }[] } }).at(-1);
  return {
    seconds: seconds!,
    peakRssMiB: Math.round(rssKiB! / 1024),
    bytesDownloaded: done?.outcome.bytesDownloaded ?? NaN,
    layerBytes: done?.outcome.platforms[0]?.layer?.size ?? NaN,
  };
}

function line(label: string, m: Measured): string {
  return `${label.padEnd(34)} ${m.seconds.toFixed(2).padStart(7)} s  ${String(m.peakRssMiB).padStart(5)} MiB RSS  ${(m.bytesDownloaded / 1e6).toFixed(2).padStart(7)} MB downloaded  ${(m.layerBytes / 1e6).toFixed(2).padStart(6)} MB layer`;
}

const registry = await startRegistry();
const scratch = await tmpDir('patchd-bench');
try {
  const tar = await bookwormRootfsTar();
  await pushRootfsImage({ tarPath: tar, registryHost: registry.host, repository: 'bench/bookworm', tag: 'main' });
  const image = `${registry.host}/bench/bookworm:main`;
  const cache = join(scratch.path, 'cache');

  console.log(`patchd patch, bookworm fixture (${(await run('du', ['-b', tar])).stdout.split('\t')[0]} bytes uncompressed)`);
  console.log(line('cold (empty index cache)', await patchOnce(image, cache, scratch.path)));
  for (let i = 1; i <= 3; i++) console.log(line(`warm #${i}`, await patchOnce(image, cache, scratch.path)));

  // Same packages, 1 GiB more image: memory must stay flat.
  const big = join(scratch.path, 'big');
  await run('mkdir', ['-p', join(big, 'root/opt')]);
  await run('tar', ['-xpf', tar, '-C', join(big, 'root')]);
  await run('sh', ['-c', `head -c 1073741824 /dev/urandom > ${join(big, 'root/opt/blob')}`]);
  await run('tar', ['--numeric-owner', '-C', join(big, 'root'), '-cf', join(big, 'rootfs.tar'), '.']);
  await rm(join(big, 'root'), { recursive: true, force: true });
  await pushRootfsImage({ tarPath: join(big, 'rootfs.tar'), registryHost: registry.host, repository: 'bench/bookworm-big', tag: 'main' });
  await writeFile(join(big, 'rootfs.tar'), '');
  console.log(line('warm, fixture + 1 GiB layer data', await patchOnce(`${registry.host}/bench/bookworm-big:main`, cache, scratch.path)));
} finally {
  await scratch.remove();
  await registry.stop();
}

// Benchmark (run on demand: `npm run bench:scan`): the scanner's throughput
// on a large image — MB/s of compressed layer data and peak RSS — next to
// plain `gunzip` over the same layers (the floor: every byte must be
// inflated once), and the same image doubled to show memory stays flat.
// Prints figures; asserts nothing.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { appLayersDir, bookwormRootfsTar } from '../test/harness/fixture-image.js';
import { run, tmpDir } from '../test/harness/tools.js';

const repoRoot = new URL('..', import.meta.url).pathname;

async function timed(scratch: string, command: string, args: string[]): Promise<{ seconds: number; rssMiB: number; stdout: string }> {
  const timeFile = join(scratch, 'time.txt');
  const { stdout } = await run('/usr/bin/time', ['-o', timeFile, '-f', '%e %M', command, ...args], { cwd: repoRoot });
  const [seconds, rssKiB] = (await readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  return { seconds: seconds!, rssMiB: Math.round(rssKiB! / 1024), stdout };
}

const scratch = await tmpDir('patchd-scan-bench');
try {
  const apps = await appLayersDir();
  const rootfs = await bookwormRootfsTar();
  // A large, realistic layer: eight more copies of the Debian root (ELF
  // binaries, dpkg databases, text) under /srv, plus the app layers.
  const big = join(scratch.path, 'big');
  await run('sh', ['-c', `mkdir -p ${big}/srv && for i in 1 2 3 4 5 6 7 8; do mkdir -p ${big}/srv/copy$i && tar -xf '${rootfs}' -C ${big}/srv/copy$i; done && tar --numeric-owner -C ${big} -cf ${scratch.path}/copies.tar . && rm -rf ${big}`]);
  const tars = [rootfs, join(apps, 'python.tar'), join(apps, 'node.tar'), join(apps, 'go.tar'), join(scratch.path, 'copies.tar')];
  const gz: string[] = [];
  for (const [i, tar] of tars.entries()) {
    const out = join(scratch.path, `layer${i}.tar.gz`);
    await run('sh', ['-c', `gzip -6 -c '${tar}' > '${out}'`]);
    gz.push(out);
  }
  let compressed = 0;
  for (const f of gz) compressed += (await stat(f)).size;
  let uncompressed = 0;
  for (const t of tars) uncompressed += (await stat(t)).size;
  const mb = (n: number) => (n / 1e6).toFixed(0);
  console.log(`image: ${gz.length} layers, ${mb(compressed)} MB compressed, ${mb(uncompressed)} MB uncompressed`);

  const report = (label: string, r: { seconds: number; rssMiB: number }, bytes: number) =>
    console.log(`${label.padEnd(30)} ${r.seconds.toFixed(2).padStart(6)} s  ${((bytes / 1e6) / r.seconds).toFixed(1).padStart(6)} MB/s compressed  ${String(r.rssMiB).padStart(5)} MiB peak RSS`);

  const gunzip = await timed(scratch.path, 'sh', ['-c', `for f in ${gz.join(' ')}; do gunzip -c "$f" > /dev/null; done`]);
  report('gunzip -c > /dev/null', gunzip, compressed);
  const scans = [];
  for (let i = 0; i < 3; i++) {
    const scan = await timed(scratch.path, 'node', ['--import', 'tsx', join(repoRoot, 'bench/scan-layers.ts'), ...gz]);
    scans.push(scan);
    report(`patchd scan #${i + 1}`, scan, compressed);
  }
  console.log(`found: ${scans[0]!.stdout.trim()}`);
  const best = Math.min(...scans.map((s) => s.seconds));
  console.log(`ratio to gunzip (best run): ${(best / gunzip.seconds).toFixed(2)}x`);

  // The same layers twice over: twice the bytes, and memory should not follow.
  const doubled = await timed(scratch.path, 'node', ['--import', 'tsx', join(repoRoot, 'bench/scan-layers.ts'), ...gz, ...gz]);
  report('patchd scan, image doubled', doubled, compressed * 2);
} finally {
  await scratch.remove();
}

import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { run, tmpDir } from './tools.js';

// A real buildkitd (built by scripts/build-buildkitd.sh, runc worker, as
// root) on a unix socket in a temp dir; stop() kills it and removes its state.

const repoRoot = new URL('../..', import.meta.url).pathname;

export interface RunningBuildkitd {
  /** unix:///…/buildkitd.sock */
  readonly address: string;
  readonly socket: string;
  stop(): Promise<void>;
}

export async function startBuildkitd(): Promise<RunningBuildkitd> {
  const binary = (await run('bash', [join(repoRoot, 'scripts/build-buildkitd.sh')], { cwd: repoRoot })).stdout.trim().split('\n').at(-1)!;
  const work = await tmpDir('patchd-buildkitd');
  const socket = join(work.path, 'buildkitd.sock');
  const child = spawn(binary, [
    '--addr', `unix://${socket}`, '--root', join(work.path, 'root'),
    '--oci-worker=true', '--containerd-worker=false', '--oci-worker-gc=false',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; ; i++) {
    if (await stat(socket).then((s) => s.isSocket(), () => false)) break;
    if (child.exitCode !== null || i > 300) {
      child.kill('SIGKILL');
      throw new Error(`buildkitd did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: `unix://${socket}`,
    socket,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      // Overlay mounts under root/ are gone once buildkitd exits; unmount anything left before removing.
      await run('sh', ['-c', `grep -o " ${work.path}/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
      await work.remove();
    },
  };
}

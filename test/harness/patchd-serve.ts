import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './tools.js';

// `patchd serve` as a child process (the built CLI), on a free or given port,
// with the YAML config written into `dir`; resolves once /healthz answers.

const repoRoot = new URL('../..', import.meta.url).pathname;

export interface RunningPatchd {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** SIGTERM (then SIGKILL after 10 s) and wait for the exit; nothing when it has already exited. */
  stop(): Promise<void>;
}

export async function startPatchdServe(args: { dir: string; config: (port: number) => string[]; port?: number; env?: Record<string, string>; logs?: 'inherit' | 'ignore' | 'pipe' }): Promise<RunningPatchd> {
  const port = args.port ?? await freePort();
  const configPath = join(args.dir, `patchd-${port}.yaml`);
  await writeFile(configPath, [`server: { host: 127.0.0.1, port: ${port} }`, ...args.config(port)].join('\n'));
  const child = spawn('node', [join(repoRoot, 'bin/patchd.js'), 'serve', '--config', configPath], {
    stdio: ['ignore', 'ignore', args.logs ?? 'ignore'],
    env: { ...process.env, PATCHD_LOG_LEVEL: 'warn', ...(args.env ?? {}) },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; !(await fetch(`${url}/healthz`).then((r) => r.ok, () => false)); i++) {
    if (child.exitCode !== null || i > 200) throw new Error(`patchd serve did not start on ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { url, child, exited, stop };
}

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Small typed wrappers the test harness uses to drive real tools (skopeo,
// umoci, tar, chroot, docker-registry) without a shell in between.

export interface RunOptions {
  readonly cwd?: string;
  /** Replaces the environment when given; the default is the test process's own. */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is closed afterwards (stdin is always closed). */
  readonly input?: string | Buffer;
  /** Return the result instead of throwing when the exit code is not 0. */
  readonly allowFailure?: boolean;
  /** Kill the child (SIGKILL) after this long and fail. */
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code; -1 when the child died from a signal. */
  readonly code: number;
}

export class CommandFailedError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
    reason: string,
  ) {
    // The tail of stderr is what tells a reader why a tool failed.
    super(`${command}: ${reason}\n${tail(result.stderr || result.stdout, 4000)}`);
    this.name = 'CommandFailedError';
  }
}

function tail(text: string, max: number): string {
  return text.length <= max ? text : `…${text.slice(-max)}`;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = [cmd, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A child that exits without reading its stdin makes the write fail with EPIPE: not our error.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${command}: could not start: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        code: code ?? -1,
      };
      if (timedOut) reject(new CommandFailedError(command, result, `timed out after ${opts.timeoutMs} ms`));
      else if (result.code !== 0 && !opts.allowFailure) {
        reject(new CommandFailedError(command, result, signal ? `killed by ${signal}` : `exit code ${result.code}`));
      } else resolve(result);
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

export interface TempDir {
  readonly path: string;
  /** Removes the directory and everything in it; safe to call twice. */
  remove(): Promise<void>;
}

export async function tmpDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `${prefix.replace(/-?$/, '-')}`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort, tmpDir } from './tools.js';

// A real Redis (Debian's redis-server) on a free loopback port, its data in a
// temp dir that stop() removes; stopped by its PID. With `password`, clients
// must AUTH (requirepass) and `url` carries it.

export interface RedisOptions {
  readonly password?: string;
}

export interface RunningRedis {
  /** 'redis://127.0.0.1:PORT' (with ':password@' when one is set) */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** SIGTERM (SIGKILL after 5 s) and wait for the exit, then remove the data dir. */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: Redis stops answering without closing connections (an outage as clients see it). */
  pause(): void;
  resume(): void;
}

export async function startRedis(options: RedisOptions = {}): Promise<RunningRedis> {
  const work = await tmpDir('patchd-redis');
  const port = await freePort();
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', work.path, '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning', '--logfile', '',
    ...(options.password ? ['--requirepass', options.password] : []),
  ];
  const child: ChildProcess = spawn('/usr/bin/redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => { output += c.toString(); });
  child.stderr?.on('data', (c: Buffer) => { output += c.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const deadline = Date.now() + 10_000;
  while (!(await answersPing(port, options.password))) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output.slice(-2000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      await work.remove();
      throw new Error(`redis-server did not answer on 127.0.0.1:${port}: ${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  return {
    url: `redis://${auth}127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    pause: () => { child.kill('SIGSTOP'); },
    resume: () => { child.kill('SIGCONT'); },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await work.remove();
    },
  };
}

/** PING over a raw socket (RESP inline command): +PONG once Redis accepts commands. */
function answersPing(port: number, password: string | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write(`${password ? `AUTH ${password}\r\n` : ''}PING\r\n`));
    socket.on('data', (c: Buffer) => {
      data += c.toString();
      if (data.includes('+PONG')) done(true);
      else if (data.includes('-')) done(false);
    });
  });
}

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, tmpDir } from './tools.js';

// A real CNCF distribution 2.8 registry (Debian's docker-registry) on a free
// loopback port, with filesystem storage in a temp dir that stop() removes.

export interface RegistryOptions {
  /** A port chosen beforehand (when another process must know it first); default a free one. */
  readonly port?: number;
  readonly htpasswd?: { readonly username: string; readonly password: string };
  readonly notifications?: { readonly url: string; readonly headers?: Record<string, string[]> };
  /** distribution's token auth: JWTs signed by the key of `rootCertBundle`'s certificate. */
  readonly token?: { readonly realm: string; readonly service: string; readonly issuer: string; readonly rootCertBundle: string };
}

export interface RunningRegistry {
  /** '127.0.0.1:PORT' */
  readonly host: string;
  /** 'http://127.0.0.1:PORT' */
  readonly url: string;
  readonly dataDir: string;
  stop(): Promise<void>;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const work = await tmpDir('patchd-registry');
  const port = options.port ?? await freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1',
    'log: { level: error, accesslog: { disabled: true } }',
    'storage:',
    `  filesystem: { rootdirectory: ${JSON.stringify(join(work.path, 'data'))} }`,
    '  delete: { enabled: true }',
    `http: { addr: ${JSON.stringify(host)} }`,
  ];
  if (options.htpasswd) {
    const { stdout } = await run('htpasswd', ['-Bbn', options.htpasswd.username, options.htpasswd.password]);
    await writeFile(join(work.path, 'htpasswd'), stdout);
    lines.push('auth:', `  htpasswd: { realm: patchd-test, path: ${JSON.stringify(join(work.path, 'htpasswd'))} }`);
  }
  if (options.token) {
    lines.push('auth:', `  token: { realm: ${JSON.stringify(options.token.realm)}, service: ${JSON.stringify(options.token.service)}, issuer: ${JSON.stringify(options.token.issuer)}, rootcertbundle: ${JSON.stringify(options.token.rootCertBundle)} }`);
  }
  if (options.notifications) {
    lines.push('notifications:', '  endpoints:', '    - name: patchd', `      url: ${JSON.stringify(options.notifications.url)}`,
      `      headers: ${JSON.stringify(options.notifications.headers ?? {})}`, '      timeout: 3s', '      threshold: 5', '      backoff: 1s');
  }
  const config = join(work.path, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);

  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr.slice(-2000)}`);
    const ok = await fetch(`http://${host}/v2/`).then((r) => r.status === 200 || r.status === 401, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not answer on ${host}: ${stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    host,
    url: `http://${host}`,
    dataDir: join(work.path, 'data'),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      await work.remove();
    },
  };
}

import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, tmpDir } from './tools.js';

// A real buildkitd (built by scripts/build-buildkitd.sh, runc worker, as
// root) on a unix socket in a temp dir; stop() kills it and removes its state.

const repoRoot = new URL('../..', import.meta.url).pathname;

export interface RunningBuildkitd {
  /** unix:///…/buildkitd.sock */
  readonly address: string;
  readonly socket: string;
  /** With `tcp: true`: tcp://127.0.0.1:PORT, mutual TLS with certificates made for this run. */
  readonly tcp?: { readonly address: string; readonly caFile: string; readonly certFile: string; readonly keyFile: string };
  stop(): Promise<void>;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, by openssl. */
async function makeCertificates(dir: string): Promise<{ ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }> {
  const f = (n: string) => join(dir, n);
  await run('sh', ['-c', [
    `cd '${dir}'`,
    'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=patchd-test-ca 2>/dev/null',
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=buildkitd 2>/dev/null',
    "printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext",
    'openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null',
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj /CN=patchd 2>/dev/null',
    "printf 'extendedKeyUsage=clientAuth\n' > client.ext",
    'openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null',
  ].join(' && ')]);
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

export async function startBuildkitd(options: { tcp?: boolean } = {}): Promise<RunningBuildkitd> {
  const binary = (await run('bash', [join(repoRoot, 'scripts/build-buildkitd.sh')], { cwd: repoRoot })).stdout.trim().split('\n').at(-1)!;
  const work = await tmpDir('patchd-buildkitd');
  const socket = join(work.path, 'buildkitd.sock');
  const tcpArgs: string[] = [];
  let tcp: RunningBuildkitd['tcp'];
  if (options.tcp) {
    const certs = await makeCertificates(work.path);
    const address = `tcp://127.0.0.1:${await freePort()}`;
    tcpArgs.push('--addr', address, '--tlscacert', certs.ca, '--tlscert', certs.serverCert, '--tlskey', certs.serverKey);
    tcp = { address, caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey };
  }
  const child = spawn(binary, [
    '--addr', `unix://${socket}`, ...tcpArgs, '--root', join(work.path, 'root'),
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
    ...(tcp ? { tcp } : {}),
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

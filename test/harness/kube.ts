import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { goTool } from './go-tools.js';
import { freePort, run, tmpDir, type RunResult } from './tools.js';

// A real Kubernetes control plane on loopback: etcd and kube-apiserver (built
// by scripts/build-go-tools.sh), TLS from a CA made for this run, an admin
// token in system:masters. No controller-manager, scheduler or kubelet runs:
// objects are stored and admitted (webhooks included) but nothing reconciles
// them, so pods stay Pending and namespaces get no `default` ServiceAccount
// unless createNamespace() makes one.

export interface KubeOptions {
  /** Extra kube-apiserver flags, appended after the harness's own (a later flag wins). */
  readonly apiserverArgs?: readonly string[];
  /** How long startKube waits for /readyz; default 120 s (a cold first start on a busy 2-core machine). */
  readonly readyTimeoutMs?: number;
}

export interface KubectlOptions {
  readonly input?: string;
  readonly allowFailure?: boolean;
  /** Default 60 s. */
  readonly timeoutMs?: number;
}

export interface Kube {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** A kubeconfig with the server, its CA and the admin token. */
  readonly kubeconfig: string;
  /** The CA that signed the API server's certificate. */
  readonly caFile: string;
  /** Its key, for a test that signs its own certificates (a webhook's) with the same CA. */
  readonly caKeyFile: string;
  /** Bearer token of user `admin` in group system:masters. */
  readonly token: string;
  /** Logs of the two processes; gone after stop(). */
  readonly etcdLog: string;
  readonly apiserverLog: string;
  kubectl(args: readonly string[], opts?: KubectlOptions): Promise<RunResult>;
  /** Creates (or updates) the namespace and its `default` ServiceAccount, which pods need to be admitted. */
  createNamespace(name: string, labels?: Readonly<Record<string, string>>): Promise<void>;
  /** Resolves once GET /readyz answers 200. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** SIGTERM to kube-apiserver then etcd (SIGKILL after 10 s each), then removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** A CA, a serving certificate for 127.0.0.1 signed by it, and the service-account RSA key, by openssl. */
async function makeKeys(dir: string): Promise<void> {
  await run('sh', ['-c', [
    `cd '${dir}'`,
    'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=patchd-test-kube-ca 2>/dev/null',
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null',
    // 10.96.0.1 and the service names: what in-cluster clients would dial, were there any.
    "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\\nextendedKeyUsage=serverAuth\\n' > apiserver.ext",
    'openssl x509 -req -in apiserver.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out apiserver.pem -days 2 -extfile apiserver.ext 2>/dev/null',
    // Service-account tokens must be RS256 (or ES256) signed; RSA is what kubeadm makes.
    'openssl genrsa -out sa.key 2048 2>/dev/null',
  ].join(' && ')]);
}

async function logTail(path: string, max = 3000): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.length <= max ? text : `…${text.slice(-max)}`;
}

interface Daemon {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

/** Starts a daemon with stdout and stderr going to `log`, and the proxy kept off loopback. */
function startDaemon(binary: string, args: readonly string[], log: string): Daemon {
  const fd = openSync(log, 'a');
  const noProxy = ['127.0.0.1', 'localhost', process.env.NO_PROXY ?? process.env.no_proxy].filter(Boolean).join(',');
  const child = spawn(binary, args, { stdio: ['ignore', fd, fd], env: { ...process.env, NO_PROXY: noProxy, no_proxy: noProxy } });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A binary that cannot be started is reported by the exit check of whoever waits on it.
  child.once('error', () => {});
  return { child, exited };
}

async function stopDaemon(daemon: Daemon): Promise<void> {
  const { child } = daemon;
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await daemon.exited;
  clearTimeout(timer);
}

function exitedEarly(daemon: Daemon): boolean {
  return daemon.child.exitCode !== null || daemon.child.signalCode !== null || daemon.child.pid === undefined;
}

/** GET url; resolves with the status code, or 0 when the connection fails. */
function httpsStatus(url: string, ca: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startKube(options: KubeOptions = {}): Promise<Kube> {
  const [etcdBin, apiserverBin, kubectlBin] = await Promise.all([goTool('etcd'), goTool('kube-apiserver'), goTool('kubectl')]);
  const work = await tmpDir('patchd-kube');
  const f = (name: string) => join(work.path, name);
  await makeKeys(work.path);
  const token = randomBytes(24).toString('hex');
  await writeFile(f('tokens.csv'), `${token},admin,admin,"system:masters"\n`);

  const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const server = `https://127.0.0.1:${securePort}`;
  const etcdLog = f('etcd.log');
  const apiserverLog = f('kube-apiserver.log');
  const daemons: Daemon[] = [];
  const ca = await readFile(f('ca.pem'), 'utf8');

  const stopAll = async () => {
    // The API server first: stopped after etcd, it would spend its timeout retrying.
    for (const daemon of [...daemons].reverse()) await stopDaemon(daemon);
    daemons.length = 0;
  };
  const failure = async (what: string) => {
    const message = `${what}\n--- etcd log (tail) ---\n${await logTail(etcdLog)}\n--- kube-apiserver log (tail) ---\n${await logTail(apiserverLog)}`;
    await stopAll();
    await work.remove();
    return new Error(message);
  };

  const etcd = startDaemon(etcdBin, [
    '--name', 'patchd-test', '--data-dir', f('etcd'),
    '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `patchd-test=${peerUrl}`,
    // The data dir is thrown away after the test: durability buys nothing here.
    '--unsafe-no-fsync', '--log-level', 'warn',
  ], etcdLog);
  daemons.push(etcd);
  for (let start = Date.now(); ;) {
    if (exitedEarly(etcd)) throw await failure(`etcd exited (code ${etcd.child.exitCode}, signal ${etcd.child.signalCode})`);
    const ok = await fetch(`${etcdUrl}/health`).then(async (r) => r.ok && (await r.json() as { health?: string }).health === 'true', () => false);
    if (ok) break;
    if (Date.now() - start > 30_000) throw await failure(`etcd did not become healthy on ${etcdUrl} within 30 s`);
    await sleep(50);
  }

  const apiserver = startDaemon(apiserverBin, [
    '--etcd-servers', etcdUrl,
    '--bind-address', '127.0.0.1', '--advertise-address', '127.0.0.1', '--secure-port', String(securePort),
    // The default (lease) reconciler refuses a loopback advertise address; it only
    // maintains the `kubernetes` Service's endpoints, which nothing here dials.
    '--endpoint-reconciler-type', 'none',
    '--cert-dir', f('cert-dir'), '--tls-cert-file', f('apiserver.pem'), '--tls-private-key-file', f('apiserver.key'),
    '--service-account-issuer', 'https://kubernetes.default.svc',
    '--service-account-key-file', f('sa.key'), '--service-account-signing-key-file', f('sa.key'),
    '--token-auth-file', f('tokens.csv'),
    '--authorization-mode', 'Node,RBAC',
    '--service-cluster-ip-range', '10.96.0.0/16',
    ...(options.apiserverArgs ?? []),
  ], apiserverLog);
  daemons.push(apiserver);

  let stopped: Promise<void> | undefined;
  const kube: Kube = {
    server,
    kubeconfig: f('kubeconfig'),
    caFile: f('ca.pem'),
    caKeyFile: f('ca.key'),
    token,
    etcdLog,
    apiserverLog,
    kubectl(args, opts = {}) {
      return run(kubectlBin, ['--kubeconfig', kube.kubeconfig, ...args], {
        ...(opts.input !== undefined ? { input: opts.input } : {}),
        ...(opts.allowFailure !== undefined ? { allowFailure: opts.allowFailure } : {}),
        timeoutMs: opts.timeoutMs ?? 60_000,
      });
    },
    async createNamespace(name, labels = {}) {
      const manifest = {
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } },
          // The ServiceAccount admission plugin rejects pods whose account does not exist; no controller makes it.
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: name } },
        ],
      };
      await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    },
    async waitReady(timeoutMs = 60_000) {
      for (let start = Date.now(); ;) {
        if (exitedEarly(apiserver)) throw new Error(`kube-apiserver exited (code ${apiserver.child.exitCode}, signal ${apiserver.child.signalCode}):\n${await logTail(apiserverLog)}`);
        if (await httpsStatus(`${server}/readyz`, ca, token) === 200) return;
        if (Date.now() - start > timeoutMs) throw new Error(`kube-apiserver not ready on ${server} within ${timeoutMs} ms:\n${await logTail(apiserverLog)}`);
        await sleep(100);
      }
    },
    stop() {
      stopped ??= stopAll().then(() => work.remove());
      return stopped;
    },
  };

  await writeFile(kube.kubeconfig, JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'patchd-test', cluster: { server, 'certificate-authority': kube.caFile } }],
    users: [{ name: 'admin', user: { token } }],
    contexts: [{ name: 'patchd-test', context: { cluster: 'patchd-test', user: 'admin' } }],
    'current-context': 'patchd-test',
  }, null, 2));

  try {
    await kube.waitReady(options.readyTimeoutMs ?? 120_000);
  } catch (err) {
    throw await failure((err as Error).message.split('\n')[0] ?? 'kube-apiserver did not become ready');
  }
  return kube;
}

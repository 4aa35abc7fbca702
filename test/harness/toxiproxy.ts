import { spawn, type ChildProcess } from 'node:child_process';
import { goTool } from './go-tools.js';
import { freePort } from './tools.js';

// Shopify's Toxiproxy v2.5 (built from the Go module proxy by
// scripts/build-go-tools.sh) on loopback, driven over its HTTP API: TCP-level
// faults between patchd and a registry — connections reset mid-body, stalls,
// data cut off after N bytes, latency, responses sliced into tiny writes.
// HTTP-level faults (statuses, corrupted bodies) stay with fault-proxy.ts.

/** Toxiproxy's toxic types this harness uses, with their attributes (see Toxiproxy's README). */
export type Toxic =
  | { type: 'reset_peer'; attributes: { timeout: number } }   // TCP RST after timeout ms (0: at once)
  | { type: 'limit_data'; attributes: { bytes: number } }     // close the connection after this many bytes
  | { type: 'timeout'; attributes: { timeout: number } }      // stop all data; close after timeout ms (0: never)
  | { type: 'latency'; attributes: { latency: number; jitter?: number } }
  | { type: 'slicer'; attributes: { average_size: number; size_variation?: number; delay?: number } };

export interface ToxicOptions {
  readonly name: string;
  /** 'downstream': registry → patchd (answers); 'upstream': patchd → registry (requests, uploads). */
  readonly stream?: 'upstream' | 'downstream';
  /** Share of new connections the toxic applies to, 0..1 (Toxiproxy decides per connection). */
  readonly toxicity?: number;
}

export interface ToxiproxyProxy {
  /** '127.0.0.1:PORT' patchd connects to. */
  readonly host: string;
  readonly url: string;
  addToxic(toxic: Toxic & ToxicOptions): Promise<void>;
  removeToxic(name: string): Promise<void>;
  /** Names of the toxics now on this proxy. */
  toxics(): Promise<string[]>;
}

export interface RunningToxiproxy {
  /** The API, 'http://127.0.0.1:PORT'. */
  readonly api: string;
  readonly pid: number;
  /** A proxy on a free loopback port to `upstream` ('127.0.0.1:PORT'). */
  createProxy(name: string, upstream: string): Promise<ToxiproxyProxy>;
  stop(): Promise<void>;
}

export async function startToxiproxy(): Promise<RunningToxiproxy> {
  const binary = await goTool('toxiproxy');
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(binary, ['-host', '127.0.0.1', '-port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await fetch(`${api}/version`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`toxiproxy did not answer on ${api}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${api}${path}`, { method, ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  return {
    api,
    pid: child.pid!,
    async createProxy(name, upstream) {
      const listenPort = await freePort();
      const host = `127.0.0.1:${listenPort}`;
      await call('POST', '/proxies', { name, listen: host, upstream, enabled: true });
      const path = `/proxies/${encodeURIComponent(name)}/toxics`;
      return {
        host,
        url: `http://${host}`,
        async addToxic({ name: toxic, stream = 'downstream', toxicity = 1, type, attributes }) {
          await call('POST', path, { name: toxic, type, stream, toxicity, attributes });
        },
        async removeToxic(toxic) { await call('DELETE', `${path}/${encodeURIComponent(toxic)}`); },
        async toxics() { return ((await call('GET', path)) as { name: string }[]).map((t) => t.name); },
      };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => { if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL'); }, 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

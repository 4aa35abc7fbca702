import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

// A loopback HTTP proxy in front of a real registry that misbehaves on
// request: it answers statuses itself, stalls, cuts or corrupts response
// bodies, or forwards a request and then hangs up without answering. Requests
// go through unchanged (method, path, query, headers with Host as the client
// sent it, bodies streaming), so the registry's upload Locations point back
// at the proxy.

export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string | Buffer } // answer this without forwarding (e.g. 503 with a registry error body, 429 with Retry-After, a 200 with a body of the test's making)
  | { kind: 'stall'; ms: number }        // forward, but only after waiting ms
  | { kind: 'cut'; afterBytes: number }  // forward, then destroy the client connection after afterBytes of the response body
  | { kind: 'corrupt'; atByte: number }  // forward, flipping one byte of the response body at offset atByte (if the body is that long)
  | { kind: 'lose-response' };           // forward the whole request to the registry, then destroy the client connection without answering

export interface ProxiedRequest {
  readonly method: string;
  /** The request target as sent: path and query ('/v2/a/blobs/uploads/…?_state=…&digest=…'). */
  readonly path: string;
  /** 0 for the first request the proxy received, then 1, 2, … */
  readonly index: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface FaultProxy {
  /** 'http://127.0.0.1:PORT' */
  readonly url: string;
  /** '127.0.0.1:PORT' */
  readonly host: string;
  /** Every request received, in order, with the fault applied to it if any. */
  readonly log: readonly (ProxiedRequest & { fault?: Fault['kind']; status?: number })[];
  setPlan(plan: (req: ProxiedRequest) => Fault | undefined): void;
  /** Stop listening and destroy every open connection: later connects are refused. */
  disappear(): Promise<void>;
  stop(): Promise<void>;
}

type Plan = (req: ProxiedRequest) => Fault | undefined;

// Per-connection headers a proxy must not pass on (RFC 9110 §7.6.1).
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade']);

export async function startFaultProxy(options: { target: string; plan?: Plan }): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:') throw new Error(`fault proxy forwards to plain http only, not ${options.target}`);
  let plan: Plan = options.plan ?? (() => undefined);
  /** `status`: what the client was answered (forwarded from the registry, or the fault's), once the answer starts. */
  const log: (ProxiedRequest & { fault?: Fault['kind']; status?: number })[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const upstreamAgent = new Agent({ keepAlive: true });
  let index = 0;

  const server = createServer((req, res) => {
    const proxied: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', index: index++, headers: { ...req.headers } };
    let fault: Fault | undefined;
    try {
      fault = plan(proxied);
    } catch (error) {
      fault = { kind: 'status', status: 500, body: `fault plan threw: ${(error as Error).message}` };
    }
    const entry: (typeof log)[number] = { ...proxied, ...(fault ? { fault: fault.kind } : {}) };
    log.push(entry);
    res.once('close', () => { if (res.headersSent) entry.status = res.statusCode; });
    handle(req, res, fault);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // A client hanging up mid-request is routine here.
  server.on('clientError', (_error, socket) => socket.destroy());

  function handle(req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): void {
    if (fault?.kind === 'status') {
      req.resume();
      const body = fault.body ?? '';
      const headers: Record<string, string> = { ...(typeof body === 'string' && body.startsWith('{') ? { 'content-type': 'application/json' } : {}), ...(fault.headers ?? {}), 'content-length': String(Buffer.byteLength(body)) };
      res.writeHead(fault.status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.kind === 'stall') {
      // The request body waits (paused) until the stall ends; a client that gives up first ends it.
      const timer = setTimeout(() => { timers.delete(timer); if (!res.destroyed && !req.destroyed) forward(req, res, undefined); }, fault.ms);
      timers.add(timer);
      res.once('close', () => { clearTimeout(timer); timers.delete(timer); });
      return;
    }
    forward(req, res, fault);
  }

  function forward(req: IncomingMessage, res: ServerResponse, fault: Exclude<Fault, { kind: 'status' | 'stall' }> | undefined): void {
    const headers: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!hopByHop.has(name)) headers[name] = value;
    const upstream = httpRequest({
      host: target.hostname, port: target.port || 80, method: req.method, path: req.url, headers, agent: upstreamAgent,
    });
    // The client went away before its answer was complete: so does the registry request.
    res.once('close', () => { if (!res.writableFinished) upstream.destroy(); });
    upstream.on('error', () => {
      if (!res.headersSent) { res.writeHead(502, { 'content-type': 'text/plain' }); res.end('fault proxy: registry unreachable'); } else res.destroy();
    });
    upstream.once('response', (up) => {
      if (fault?.kind === 'lose-response') {
        // The registry did the work; its answer never reaches the client.
        up.resume();
        up.once('end', () => res.socket?.destroy());
        up.on('error', () => res.socket?.destroy());
        return;
      }
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(up.headers)) if (value !== undefined && !hopByHop.has(name) && name !== 'transfer-encoding') out[name] = value;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      let offset = 0;
      let cut = false;
      if (fault?.kind === 'cut') {
        res.flushHeaders();
        if (fault.afterBytes <= 0) { up.destroy(); res.socket?.destroy(); return; }
      }
      up.on('data', (chunk: Buffer) => {
        const start = offset;
        offset += chunk.length;
        if (fault?.kind === 'corrupt' && fault.atByte >= start && fault.atByte < offset) {
          chunk = Buffer.from(chunk);
          chunk[fault.atByte - start] = chunk[fault.atByte - start]! ^ 0xff;
        }
        if (fault?.kind === 'cut' && offset >= fault.afterBytes) {
          cut = true;
          up.destroy();
          const socket = res.socket;
          res.write(chunk.subarray(0, fault.afterBytes - start), () => socket?.destroy());
          return;
        }
        if (!res.write(chunk)) { up.pause(); res.once('drain', () => up.resume()); }
      });
      // A body shorter than a cut's afterBytes arrives whole.
      up.once('end', () => res.end());
      up.on('error', () => { if (!cut) res.destroy(); });
    });
    req.pipe(upstream);
    req.on('error', () => upstream.destroy());
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  let closed: Promise<void> | undefined;

  const disappear = () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
    return closed;
  };

  return {
    url: `http://${host}`,
    host,
    log,
    setPlan(next) { plan = next; },
    disappear,
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await disappear();
      upstreamAgent.destroy();
    },
  };
}

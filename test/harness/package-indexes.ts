import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { freePort } from './tools.js';

// Package indexes on loopback for the library executors' tests and benchmarks:
// a private PyPI simple index serving given files, and an npm registry mirror
// in front of registry.npmjs.org (BuildKit's containers do not trust this
// machine's egress CA, and a mirror is what a private deployment has anyway).

export interface NpmMirror { readonly url: string; readonly requests: string[]; close(): Promise<void> }

/**
 * A PEP 503 / PEP 691 simple index on loopback serving the given files (what
 * a private index offers): JSON to clients that ask for it (patchd), HTML to
 * the rest; every request is logged.
 */
export async function startSimpleIndex(files: readonly string[]): Promise<{ url: string; requested: string[]; close(): Promise<void> }> {
  const requested: string[] = [];
  const projects = new Map<string, { filename: string; path: string; sha256: string }[]>();
  for (const path of files) {
    const filename = path.split('/').at(-1)!;
    const project = filename.replace(/-\d.*$/, '').toLowerCase().replace(/[-_.]+/g, '-');
    const sha256 = createHash('sha256').update(await readFile(path)).digest('hex');
    projects.set(project, [...(projects.get(project) ?? []), { filename, path, sha256 }]);
  }
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    requested.push(url);
    const page = /^\/simple\/([^/]+)\/$/.exec(url);
    if (page) {
      const entries = projects.get(page[1]!);
      if (!entries) { res.writeHead(404).end(); return; }
      if ((req.headers.accept ?? '').includes('application/vnd.pypi.simple.v1+json')) {
        const versions = [...new Set(entries.map((e) => /-(\d[^-]*?)(?:\.tar\.gz|-)/.exec(e.filename)![1]!))];
        res.writeHead(200, { 'content-type': 'application/vnd.pypi.simple.v1+json' }).end(JSON.stringify({
          meta: { 'api-version': '1.1' }, name: page[1], versions,
          files: entries.map((e) => ({ filename: e.filename, url: `../../files/${e.filename}`, hashes: { sha256: e.sha256 } })),
        }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!DOCTYPE html><html><body>${entries.map((e) => `<a href="../../files/${e.filename}#sha256=${e.sha256}">${e.filename}</a>`).join('\n')}</body></html>`);
      return;
    }
    const file = /^\/files\/([^/]+)$/.exec(url);
    const entry = file && [...projects.values()].flat().find((e) => e.filename === file[1]);
    if (!entry) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    createReadStream(entry.path).pipe(res);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}/simple`, requested,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A loopback npm registry mirror in front of registry.npmjs.org. */
export async function startNpmMirror(): Promise<NpmMirror> {
  const requests: string[] = [];
  let self = '';
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const upstream = `https://registry.npmjs.org${req.url ?? '/'}`;
    fetch(upstream, { headers: { accept: req.headers.accept ?? '*/*' } }).then(async (answer) => {
      const type = answer.headers.get('content-type') ?? 'application/octet-stream';
      if (type.includes('json')) {
        const body = (await answer.text()).replaceAll('https://registry.npmjs.org/', `${self}/`);
        res.writeHead(answer.status, { 'content-type': type }).end(body);
        return;
      }
      res.writeHead(answer.status, { 'content-type': type });
      await pipeline(Readable.fromWeb(answer.body! as import('node:stream/web').ReadableStream), res);
    }).catch((error: unknown) => { res.destroy(error as Error); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  self = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: self, requests, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }) };
}

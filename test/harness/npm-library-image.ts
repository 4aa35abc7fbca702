import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { pushTinyImage } from './tiny-image.js';

// The smallest image patchd really patches (a patch layer pushed, a
// `<tag>-patched` manifest PUT): one globally installed npm package at a
// version an OSV record (written here) says is vulnerable, the fix published
// by a loopback npm registry. No OS, no network beyond loopback: a patch takes
// milliseconds, so tests and benchmarks can push hundreds.

export const libraryName = 'patchd-replica-lib';
export const vulnerableVersion = '1.0.0';
export const fixedVersion = '1.0.1';

async function tgz(entries: { name: string; content: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, e.content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return gzipSync(Buffer.concat(chunks));
}

const packageJson = (version: string) => JSON.stringify({ name: libraryName, version, main: 'index.js' });

export interface LibraryFixture {
  /** The loopback npm registry (libraryIndex.npm). */
  readonly npmUrl: string;
  /** A directory of OSV records (advisories.osv). */
  readonly osvDir: string;
  /** Packument and tarball requests served. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** The npm registry serving the fixed version, and the OSV record naming the fix, under `dir`. */
export async function startLibraryFixture(dir: string): Promise<LibraryFixture> {
  const osvDir = join(dir, 'osv');
  await mkdir(osvDir, { recursive: true });
  await writeFile(join(osvDir, 'PATCHD-REPLICA-1.json'), JSON.stringify({
    schema_version: '1.6.0', id: 'PATCHD-REPLICA-1', modified: '2026-01-01T00:00:00Z', published: '2026-01-01T00:00:00Z',
    summary: `test advisory for ${libraryName}`,
    affected: [{ package: { ecosystem: 'npm', name: libraryName }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: fixedVersion }] }] }],
  }));
  const tarball = await tgz([
    { name: 'package/package.json', content: packageJson(fixedVersion) },
    { name: 'package/index.js', content: 'module.exports = "fixed";\n' },
  ]);
  const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
  const shasum = createHash('sha1').update(tarball).digest('hex');
  const requests: string[] = [];
  let self = '';
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(url);
    if (url === `/${libraryName}`) {
      const version = (v: string) => ({ name: libraryName, version: v, dist: { tarball: `${self}/${libraryName}/-/${libraryName}-${v}.tgz`, ...(v === fixedVersion ? { integrity, shasum } : {}) } });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        name: libraryName, 'dist-tags': { latest: fixedVersion }, versions: { [vulnerableVersion]: version(vulnerableVersion), [fixedVersion]: version(fixedVersion) },
      }));
      return;
    }
    if (url === `/${libraryName}/-/${libraryName}-${fixedVersion}.tgz`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(tarball.length) }).end(tarball);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  self = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    npmUrl: self, osvDir, requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** Pushes a distinct image (`content` makes it distinct) holding the vulnerable global package; returns its digest. */
export function pushLibraryImage(args: { registryUrl: string; repository: string; tag: string; content: string }): Promise<{ digest: string }> {
  return pushTinyImage({
    ...args,
    files: [
      { path: `usr/local/lib/node_modules/${libraryName}/package.json`, content: packageJson(vulnerableVersion) },
      { path: `usr/local/lib/node_modules/${libraryName}/index.js`, content: `module.exports = ${JSON.stringify(args.content)};\n` },
    ],
  });
}

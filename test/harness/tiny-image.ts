import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

// A one-file image pushed straight through the distribution API (fetch, no
// patchd code), with the manifest annotations a test wants: patchd's own, to
// stand in for an image patchd published, or none, for a look-alike.

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A tar of small regular files (ustar headers, contents, two zero blocks). */
function tarWithFiles(files: readonly { path: string; content: string }[]): Buffer {
  return Buffer.concat([...files.map((f) => tarEntry(f.path, f.content)), Buffer.alloc(1024)]);
}

function tarEntry(name: string, content: string): Buffer {
  const body = Buffer.from(content);
  const header = Buffer.alloc(512);
  header.write(name, 0, 100);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const padded = Buffer.alloc(Math.ceil(body.length / 512) * 512);
  body.copy(padded);
  return Buffer.concat([header, padded]);
}

async function pushBlob(registryUrl: string, repository: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  const start = await fetch(`${registryUrl}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`blob upload to ${repository}: HTTP ${start.status}`);
  const location = new URL(start.headers.get('location')!, registryUrl);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`blob PUT to ${repository}: HTTP ${put.status} ${await put.text()}`);
  return { digest, size: data.length };
}

/** Pushes a distinct one-layer image (its `content` makes it distinct) as `repository:tag`; returns its manifest digest. */
export async function pushTinyImage(args: {
  readonly registryUrl: string;
  readonly repository: string;
  readonly tag: string;
  readonly content: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /** More files in the layer beside hello.txt (paths without a leading /). */
  readonly files?: readonly { readonly path: string; readonly content: string }[];
}): Promise<{ digest: string }> {
  const tar = tarWithFiles([{ path: 'hello.txt', content: args.content }, ...(args.files ?? [])]);
  const layer = await pushBlob(args.registryUrl, args.repository, gzipSync(tar));
  const config = await pushBlob(args.registryUrl, args.repository, Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z',
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
  })));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    ...(args.annotations ? { annotations: args.annotations } : {}),
  }));
  const res = await fetch(`${args.registryUrl}/v2/${args.repository}/manifests/${args.tag}`, {
    method: 'PUT', body: new Uint8Array(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (res.status !== 201) throw new Error(`manifest PUT ${args.repository}:${args.tag}: HTTP ${res.status} ${await res.text()}`);
  const digest = sha256(manifest);
  if (res.headers.get('docker-content-digest') !== digest) throw new Error(`registry stored ${res.headers.get('docker-content-digest')}, expected ${digest}`);
  return { digest };
}

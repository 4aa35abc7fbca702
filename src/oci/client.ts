import { createHash } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciError } from './errors.js';
import { MediaType, manifestMediaTypes } from './media-types.js';
import { formatReference, manifestIdentifier, type Reference } from './reference.js';
import { createRegistryTransport, header, type RegistryResponse, type RegistryTransport, type TransportOptions } from './transport.js';
import { verifyingStream } from './verify.js';

export interface RegistryClientOptions extends TransportOptions {
  /** When set, uploads go in PATCH chunks of this many bytes; otherwise one monolithic PUT. */
  readonly chunkSize?: number;
}

export interface ManifestResponse {
  readonly mediaType: string;
  readonly digest: string;
  readonly bytes: Buffer;
}

export interface RegistryClient {
  getManifest(ref: Reference): Promise<ManifestResponse>;
  headManifest(ref: Reference): Promise<{ mediaType: string; digest: string; size: number } | undefined>;
  putManifest(ref: Reference, bytes: Buffer, mediaType: string): Promise<string>;
  openBlob(repo: Reference, desc: { digest: string; size: number }): Promise<Readable>;
  hasBlob(repo: Reference, digest: string): Promise<boolean>;
  pushBlob(repo: Reference, desc: { digest: string; size: number }, open: () => Promise<Readable>, options?: { mountFrom?: string }): Promise<'exists' | 'mounted' | 'uploaded'>;
  listTags(repo: Reference): Promise<string[]>;
  /** The referrers API (distribution spec 1.1): the index of manifests whose subject is `digest`; undefined when the registry has no such API. */
  getReferrers(repo: Reference, digest: string): Promise<{ readonly manifests: readonly ReferrerDescriptor[] } | undefined>;
}

export interface ReferrerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export const maxManifestBytes = 4 * 1024 * 1024;

/**
 * A distribution-spec v1.1 client: the operations, on a transport that does
 * the HTTP (ping, challenge, tokens, redirects, timeouts). Each operation is
 * retried whole after a transient failure, bodies included; writes whose
 * answer was lost are checked (HEAD) before they are sent again, and a blob
 * download that breaks off resumes where it stopped. Secrets live only in
 * request headers, never in logs or errors.
 */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  return registryClientOn(createRegistryTransport(options), { ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}) });
}

/** The operations on a given transport (several clients may share one, and its tokens). */
export function registryClientOn(transport: RegistryTransport, options: { readonly chunkSize?: number } = {}): RegistryClient {
  const { retrying, send, failure } = transport;
  const repoScope = (repo: Reference, actions: string) => `repository:${repo.repository}:${actions}`;
  const manifestUrl = (ref: Reference) => `/v2/${ref.repository}/manifests/${manifestIdentifier(ref)}`;
  const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  async function headManifestOnce(ref: Reference, what: string) {
    const res = await send(ref.registry, { method: 'HEAD', url: manifestUrl(ref), scopes: [repoScope(ref, 'pull')], what, headers: { accept: manifestMediaTypes.join(', ') } });
    if (res.statusCode === 404) { await transport.discard(res); return undefined; }
    if (res.statusCode !== 200) throw await failure(res, what);
    await transport.discard(res);
    const digest = header(res.headers['docker-content-digest']);
    if (!digest) return undefined;
    return { mediaType: header(res.headers['content-type'])?.split(';')[0]?.trim() ?? '', digest, size: Number(header(res.headers['content-length']) ?? 0) };
  }

  async function hasBlobOnce(repo: Reference, digest: string, what: string): Promise<boolean> {
    const res = await send(repo.registry, { method: 'HEAD', url: `/v2/${repo.repository}/blobs/${digest}`, scopes: [repoScope(repo, 'pull')], what });
    await transport.discard(res);
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw await failure(res, what);
  }

  const client: RegistryClient = {
    getManifest(ref) {
      const what = `get manifest ${formatReference(ref)}`;
      return retrying(what, async () => {
        const res = await send(ref.registry, { method: 'GET', url: manifestUrl(ref), scopes: [repoScope(ref, 'pull')], what, headers: { accept: manifestMediaTypes.join(', ') } });
        if (res.statusCode !== 200) throw await failure(res, what);
        const declared = Number(header(res.headers['content-length']) ?? '0');
        if (declared > maxManifestBytes) {
          res.body.destroy();
          throw new OciError('MANIFEST_TOO_LARGE', `${what}: ${declared} bytes is over the ${maxManifestBytes}-byte limit`);
        }
        const bytes = await transport.readBody(res, what, maxManifestBytes);
        if (!bytes) throw new OciError('MANIFEST_TOO_LARGE', `${what}: over the ${maxManifestBytes}-byte limit`);
        const digest = sha256(bytes);
        if (ref.digest && ref.digest.startsWith('sha256:') && ref.digest !== digest) {
          throw new OciError('MANIFEST_DIGEST_MISMATCH', `${what}: content hashes to ${digest}`);
        }
        const contentType = header(res.headers['content-type'])?.split(';')[0]?.trim();
        let mediaType = contentType && manifestMediaTypes.includes(contentType) ? contentType : undefined;
        if (!mediaType) {
          try { mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType; } catch { /* reported below */ }
        }
        if (!mediaType) throw new OciError('UNEXPECTED_STATUS', `${what}: no manifest media type (Content-Type ${contentType ?? 'absent'})`);
        return { mediaType, digest, bytes };
      });
    },

    headManifest(ref) {
      const what = `head manifest ${formatReference(ref)}`;
      return retrying(what, () => headManifestOnce(ref, what));
    },

    async putManifest(ref, bytes, mediaType) {
      const what = `put manifest ${formatReference(ref)}`;
      if (bytes.length > maxManifestBytes) throw new OciError('MANIFEST_TOO_LARGE', `${what}: ${bytes.length} bytes`);
      const digest = sha256(bytes);
      return retrying(what, async (attempt) => {
        // The answer to an earlier PUT may be all that was lost: the registry may hold these bytes already.
        if (attempt > 1 && (await headManifestOnce(ref, `${what} (check after a failed attempt)`))?.digest === digest) return digest;
        const res = await send(ref.registry, { method: 'PUT', url: manifestUrl(ref), scopes: [repoScope(ref, 'pull,push')], what, headers: { 'content-type': mediaType }, body: async () => bytes });
        if (res.statusCode !== 201 && res.statusCode !== 200) throw await failure(res, what);
        await transport.discard(res);
        return header(res.headers['docker-content-digest']) ?? digest;
      });
    },

    async openBlob(repo, desc) {
      const what = `get blob ${desc.digest} from ${repo.registry}/${repo.repository}`;
      const verify = verifyingStream(desc);
      const stopped = new AbortController();
      const open = async (offset: number) => {
        const res = await send(repo.registry, {
          method: 'GET', url: `/v2/${repo.repository}/blobs/${desc.digest}`, scopes: [repoScope(repo, 'pull')], what, signal: stopped.signal,
          ...(offset > 0 ? { headers: { range: `bytes=${offset}-` } } : {}),
        });
        if (res.statusCode === 200) return { res, skip: offset }; // a registry that ignores Range sends it all again
        if (offset > 0 && res.statusCode === 206) {
          const range = header(res.headers['content-range']);
          if (Number(/^bytes (\d+)-/.exec(range ?? '')?.[1]) === offset) return { res, skip: 0 };
          res.body.destroy();
          throw new OciError('UNEXPECTED_STATUS', `${what}: asked for bytes ${offset}- and got Content-Range ${range ?? 'none'}`);
        }
        throw await failure(res, what);
      };
      const first = await retrying(what, () => open(0));
      let current = first.res;

      // One continuous stream across re-opened bodies, all fed to the same verifier.
      async function* bytes(): AsyncGenerator<Buffer> {
        let { res, skip } = first;
        let passed = 0;
        let failures = 0;
        /** After the body failed with `error`: the blob again from byte `passed`, while attempts remain. */
        const resume = async (error: unknown) => {
          for (let last = error; ;) {
            if (last instanceof OciError && !last.transient) throw last;
            if (++failures >= transport.attempts) {
              throw new OciError('NETWORK', `${what}: the body broke off at byte ${passed} of ${desc.size}, ${failures} times: ${(last as Error)?.message ?? String(last)}`, { cause: last });
            }
            const delay = transport.delayAfter(failures, last);
            transport.logger.debug({ what, offset: passed, attempt: failures, delayMs: Math.round(delay) }, 'resuming blob download');
            await sleep(delay, undefined, { signal: stopped.signal });
            try {
              return await open(passed);
            } catch (reopenError) {
              if (stopped.signal.aborted) throw reopenError;
              last = reopenError;
            }
          }
        };
        for (;;) {
          try {
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              const fresh = skip > 0 ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
              skip -= chunk.length - fresh.length;
              if (fresh.length === 0) continue;
              passed += fresh.length;
              yield fresh;
            }
            return;
          } catch (error) {
            if (stopped.signal.aborted) throw error;
            if (desc.size >= 0 && passed >= desc.size) return; // all there: the verifier judges it
            ({ res, skip } = await resume(error));
            current = res;
          }
        }
      }
      // pipeline: destroying the result destroys the HTTP body, a body failure fails the result. However
      // the result ends, the body in hand (unread if the consumer never started) and any pending re-open end too.
      return pipeline(Readable.from(bytes(), { objectMode: false }), verify, () => { current.body.destroy(); stopped.abort(); });
    },

    hasBlob(repo, digest) {
      const what = `head blob ${digest} in ${repo.registry}/${repo.repository}`;
      return retrying(what, () => hasBlobOnce(repo, digest, what));
    },

    async pushBlob(repo, desc, open, pushOptions) {
      if (await client.hasBlob(repo, desc.digest)) return 'exists';
      const what = `push blob ${desc.digest} to ${repo.registry}/${repo.repository}`;
      const mountFrom = pushOptions?.mountFrom;
      const scopes = [repoScope(repo, 'pull,push'), ...(mountFrom ? [`repository:${mountFrom}:pull`] : [])];
      let sent: 'mount' | 'upload' | undefined;
      return retrying(what, async (attempt) => {
        // An attempt that failed after its mount or completing PUT went out may have landed
        // (its answer lost): the upload URL is used up, so look before starting over.
        if (attempt > 1 && sent && await hasBlobOnce(repo, desc.digest, `${what} (check after a failed attempt)`)) return sent === 'mount' ? 'mounted' : 'uploaded';
        return uploadOnce(repo, desc, open, scopes, what, mountFrom, (s) => { sent = s; });
      });
    },

    listTags(repo) {
      const what = `list tags of ${repo.registry}/${repo.repository}`;
      return retrying(what, async () => {
        const tags: string[] = [];
        let url: string | undefined = `/v2/${repo.repository}/tags/list`;
        while (url) {
          const res: RegistryResponse = await send(repo.registry, { method: 'GET', url, scopes: [repoScope(repo, 'pull')], what });
          if (res.statusCode === 404) { await transport.discard(res); return tags; }
          if (res.statusCode !== 200) throw await failure(res, what);
          const body = await transport.readBody(res, what, 16 * 1024 * 1024);
          if (!body) throw new OciError('UNEXPECTED_STATUS', `${what}: a page over 16 MiB`);
          let json: { tags?: string[] | null };
          try { json = JSON.parse(body.toString('utf8')); } catch { throw new OciError('UNEXPECTED_STATUS', `${what}: the answer is not JSON`); }
          tags.push(...(json.tags ?? []));
          const link = header(res.headers.link);
          url = link ? /<([^>]+)>;\s*rel="?next"?/.exec(link)?.[1] : undefined; // relative or absolute: send() takes both
        }
        return tags;
      });
    },

    getReferrers(repo, digest) {
      const what = `list referrers of ${repo.registry}/${repo.repository}@${digest}`;
      return retrying(what, async () => {
        const res = await send(repo.registry, { method: 'GET', url: `/v2/${repo.repository}/referrers/${digest}`, scopes: [repoScope(repo, 'pull')], what, headers: { accept: MediaType.ociIndex } });
        // 404 (or 405/400 from registries that route it elsewhere): no referrers API; the spec's tag schema applies.
        if (res.statusCode === 404 || res.statusCode === 405 || res.statusCode === 400) { await transport.discard(res); return undefined; }
        if (res.statusCode !== 200) throw await failure(res, what);
        const body = await transport.readBody(res, what, maxManifestBytes);
        if (!body) throw new OciError('MANIFEST_TOO_LARGE', `${what}: over the ${maxManifestBytes}-byte limit`);
        let index: { manifests?: ReferrerDescriptor[] | null };
        try { index = JSON.parse(body.toString('utf8')); } catch { throw new OciError('UNEXPECTED_STATUS', `${what}: the answer is not JSON`); }
        return { manifests: index.manifests ?? [] };
      });
    },
  };

  /**
   * One upload from its POST: mounted, or the blob sent in one PUT or in PATCH
   * chunks and a closing PUT, from a freshly opened stream. Any failure ends
   * the attempt; the next one starts from a new POST.
   */
  async function uploadOnce(
    repo: Reference, desc: { digest: string; size: number }, open: () => Promise<Readable>, scopes: string[], what: string,
    mountFrom: string | undefined, sending: (what: 'mount' | 'upload') => void,
  ): Promise<'mounted' | 'uploaded'> {
    const base = transport.endpoint(repo.registry);
    const start = mountFrom
      ? `/v2/${repo.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(mountFrom)}`
      : `/v2/${repo.repository}/blobs/uploads/`;
    if (mountFrom) sending('mount');
    const res = await send(repo.registry, { method: 'POST', url: start, scopes, what, headers: { 'content-length': '0' } });
    if (res.statusCode === 201 && mountFrom) { await transport.discard(res); return 'mounted'; }
    if (res.statusCode !== 202) throw await failure(res, what);
    await transport.discard(res);
    let location = uploadLocation(res, base, what);

    const streams: Readable[] = [];
    const fresh = async () => { const s = await open(); streams.push(s); return s; };
    try {
      if (options.chunkSize && desc.size > options.chunkSize) {
        let offset = 0;
        for await (const chunk of chunked(await fresh(), options.chunkSize)) {
          const patch = await send(repo.registry, {
            method: 'PATCH', url: location, scopes, what,
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(chunk.length), 'content-range': `${offset}-${offset + chunk.length - 1}` },
            body: async () => chunk,
          });
          if (patch.statusCode !== 202) throw await failure(patch, `${what} (chunk at ${offset})`);
          await transport.discard(patch);
          location = uploadLocation(patch, base, what);
          offset += chunk.length;
        }
        sending('upload');
        const done = await send(repo.registry, { method: 'PUT', url: withDigestParam(location, desc.digest), scopes, what, headers: { 'content-length': '0' } });
        if (done.statusCode !== 201) throw await failure(done, what);
        await transport.discard(done);
        return 'uploaded';
      }
      sending('upload');
      const put = await send(repo.registry, {
        method: 'PUT', url: withDigestParam(location, desc.digest), scopes, what,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body: fresh,
      });
      if (put.statusCode !== 201) throw await failure(put, what);
      await transport.discard(put);
      return 'uploaded';
    } finally {
      for (const s of streams) if (!s.readableEnded) s.destroy();
    }
  }

  return client;
}

/** The upload session URL as the registry gave it (relative ones resolved against the registry). */
function uploadLocation(res: RegistryResponse, base: string, what: string): string {
  const location = header(res.headers.location);
  if (!location) throw new OciError('UNEXPECTED_STATUS', `${what}: upload response without Location`);
  return new URL(location, base).toString();
}

function withDigestParam(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

async function* chunked(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    pending.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    while (length >= size) {
      const all = Buffer.concat(pending);
      yield all.subarray(0, size);
      pending = [all.subarray(size)];
      length = all.length - size;
    }
  }
  if (length > 0) yield Buffer.concat(pending);
}

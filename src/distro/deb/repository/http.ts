import { pipeline, type Readable, type Transform } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { AptError } from './errors.js';

export interface FetchResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Dispatcher.ResponseData['body'];
}

/**
 * GET with redirects followed (mirrors redirect), and retries with backoff on
 * 5xx and network errors. An `authorization` header goes only to the origin
 * of `url`: a redirect elsewhere is followed without it.
 */
export async function fetchWithRetries(dispatcher: Dispatcher, url: string, headers: Record<string, string> = {}, attempts = 4): Promise<FetchResult & { url: string }> {
  let lastError: unknown;
  const origin = new URL(url).origin;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      let current = url;
      for (let hops = 0; hops < 10; hops++) {
        const sent = new URL(current).origin === origin ? headers : withoutAuthorization(headers);
        const res = await request(current, { method: 'GET', headers: { 'user-agent': 'patchd/0.1', ...sent }, dispatcher });
        if ([301, 302, 303, 307, 308].includes(res.statusCode)) {
          const location = res.headers.location;
          await res.body.dump();
          if (typeof location !== 'string') throw new AptError('FETCH_FAILED', `${url}: redirect without Location`);
          current = new URL(location, current).toString();
          continue;
        }
        if (res.statusCode >= 500 && attempt < attempts) {
          await res.body.dump();
          lastError = new AptError('FETCH_FAILED', `${url}: HTTP ${res.statusCode}`);
          break;
        }
        return { status: res.statusCode, headers: res.headers, body: res.body, url: current };
      }
    } catch (error) {
      if (error instanceof AptError) throw error;
      lastError = new AptError('FETCH_FAILED', `${url}: ${(error as Error).message}`, { cause: error });
    }
    await new Promise((r) => setTimeout(r, 200 * 2 ** (attempt - 1) * (0.5 + Math.random() / 2)));
  }
  throw lastError instanceof Error ? lastError : new AptError('FETCH_FAILED', `${url}: failed`);
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
}

/**
 * The response body joined (stream.pipeline) to `through`, which is returned:
 * destroying it, or any failure, destroys the body and frees its connection;
 * a connection that fails mid-body reads as FETCH_FAILED.
 */
export function bodyThrough(res: FetchResult & { url: string }, through: Transform): Readable {
  // Registered before pipeline's own listener, so `through` fails with the typed error first.
  res.body.once('error', (error) => through.destroy(new AptError('FETCH_FAILED', `${res.url}: ${error.message}`, { cause: error })));
  return pipeline(res.body, through, () => { /* failures surface on `through`, which the caller reads */ });
}

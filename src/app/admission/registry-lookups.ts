import { LRUCache } from 'lru-cache';
import type { RegistryClient } from '../../oci/client.js';
import { OciError } from '../../oci/errors.js';
import { AdmissionError } from './errors.js';

/** One configured registry as admission reaches it (the worker's RegistryAccess fits). */
export interface RegistryEndpoint {
  /** host[:port] of the registry's URL: what the client sends requests to. */
  readonly host: string;
  readonly client: RegistryClient;
}

/** What admission asks registries, by configured registry name. */
export interface RegistryLookups {
  /** The digest `repository:tag` names now; undefined when the registry has no such tag. */
  digestOf(registry: string, repository: string, tag: string): Promise<string | undefined>;
  /** The annotations of the manifest or index at `digest` ({} when it has none); undefined when the registry has no such manifest. */
  annotationsOf(registry: string, repository: string, digest: string): Promise<Readonly<Record<string, string>> | undefined>;
}

interface Lookup { readonly registry: string; readonly repository: string; readonly id: string }
/** A cached answer; `value` undefined is "not there", which is an answer too. */
interface Answer<T> { readonly value: T | undefined }

/**
 * Lookups through the per-registry clients, each answer kept for `ttlMs`
 * (0: not kept) and concurrent identical lookups shared. A lookup that has
 * no answer within `timeoutMs` fails with LOOKUP_FAILED while the client's
 * own attempt runs on (its answer is still cached when it comes); so does
 * one the registry refuses or that cannot connect. Manifests are content
 * addressed, so their annotations are kept ten times longer than tags.
 */
export function cachedRegistryLookups(registries: ReadonlyMap<string, RegistryEndpoint>, options: { readonly timeoutMs: number; readonly ttlMs: number }): RegistryLookups {
  const endpoint = (name: string) => {
    const found = registries.get(name);
    if (!found) throw new AdmissionError('LOOKUP_FAILED', `registry ${name} is not connected`);
    return found;
  };

  async function headTag({ registry, repository, id }: Lookup): Promise<Answer<string>> {
    const { host, client } = endpoint(registry);
    const head = await client.headManifest({ registry: host, repository, tag: id });
    return { value: head?.digest };
  }

  async function readAnnotations({ registry, repository, id }: Lookup): Promise<Answer<Record<string, string>>> {
    const { host, client } = endpoint(registry);
    try {
      const manifest = await client.getManifest({ registry: host, repository, digest: id });
      const parsed = JSON.parse(manifest.bytes.toString('utf8')) as { annotations?: unknown };
      const annotations = parsed.annotations && typeof parsed.annotations === 'object' ? parsed.annotations as Record<string, unknown> : {};
      return { value: Object.fromEntries(Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === 'string')) };
    } catch (error) {
      if (error instanceof OciError && (error.code === 'NOT_FOUND' || error.code === 'MANIFEST_UNKNOWN')) return { value: undefined };
      throw error;
    }
  }

  const tags = answers(headTag, options.ttlMs);
  const manifests = answers(readAnnotations, options.ttlMs * 10);

  async function bounded<T>(what: string, work: Promise<Answer<T>>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AdmissionError('LOOKUP_FAILED', `${what}: no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    });
    try {
      return (await Promise.race([work, timeout])).value;
    } catch (error) {
      if (error instanceof AdmissionError) throw error;
      throw new AdmissionError('LOOKUP_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    digestOf: (registry, repository, tag) => bounded(`HEAD ${repository}:${tag} on ${registry}`, tags({ registry, repository, id: tag })),
    annotationsOf: (registry, repository, digest) => bounded(`manifest ${repository}@${digest} on ${registry}`, manifests({ registry, repository, id: digest })),
  };
}

/** `lookup`'s answers kept for `ttlMs` (failures never), one lookup in flight per key. */
function answers<T>(lookup: (key: Lookup) => Promise<Answer<T>>, ttlMs: number): (key: Lookup) => Promise<Answer<T>> {
  if (ttlMs <= 0) return lookup;
  const cache = new LRUCache<string, Answer<T>, Lookup>({
    max: 10_000,
    ttl: ttlMs,
    fetchMethod: (_key, _stale, { context }) => lookup(context),
  });
  return async (key) => {
    const answer = await cache.fetch(`${key.registry}\n${key.repository}\n${key.id}`, { context: key });
    if (!answer) throw new AdmissionError('LOOKUP_FAILED', `no answer for ${key.repository} ${key.id} on ${key.registry}`);
    return answer;
  };
}

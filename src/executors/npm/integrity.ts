import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { NpmError } from './errors.js';

/** One hash of a Subresource Integrity string (`sha512-<base64>`). */
export interface IntegrityHash {
  readonly algorithm: 'sha512' | 'sha384' | 'sha256' | 'sha1';
  readonly digest: string;
}

const strength = ['sha1', 'sha256', 'sha384', 'sha512'] as const;

/**
 * The strongest hash an SRI string names (npm's ssri picks the same way), or
 * the registry's legacy hex `shasum` as sha1 when there is no integrity.
 */
export function expectedIntegrity(dist: { readonly integrity?: unknown; readonly shasum?: unknown }, what: string): { hash: IntegrityHash; sri: string } {
  if (typeof dist.integrity === 'string' && dist.integrity.trim() !== '') {
    const hashes = dist.integrity.trim().split(/\s+/).map(parseHash).filter((h): h is IntegrityHash => h !== undefined);
    const best = hashes.sort((a, b) => strength.indexOf(b.algorithm) - strength.indexOf(a.algorithm))[0];
    if (!best) throw new NpmError('NPM_INTEGRITY_MISSING', `${what}: the registry's integrity ${JSON.stringify(dist.integrity)} names no hash patchd can check`);
    return { hash: best, sri: dist.integrity.trim() };
  }
  if (typeof dist.shasum === 'string' && /^[0-9a-f]{40}$/i.test(dist.shasum)) {
    const digest = Buffer.from(dist.shasum, 'hex').toString('base64');
    return { hash: { algorithm: 'sha1', digest }, sri: `sha1-${digest}` };
  }
  throw new NpmError('NPM_INTEGRITY_MISSING', `${what}: the registry gives neither integrity nor shasum for the tarball`);
}

function parseHash(token: string): IntegrityHash | undefined {
  // Options after '?' are allowed by SRI and ignored.
  const match = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/]+={0,2})(\?.*)?$/.exec(token);
  if (!match) return undefined;
  return { algorithm: match[1] as IntegrityHash['algorithm'], digest: match[2]! };
}

/**
 * Passes bytes through while hashing them; at the end of the stream it fails
 * with NPM_INTEGRITY_MISMATCH (naming the package) unless the bytes hash to
 * the expected digest. Nothing downstream sees the end of a tampered stream.
 */
export class IntegrityCheck extends Transform {
  private readonly hash: Hash;
  size = 0;

  constructor(private readonly expected: IntegrityHash, private readonly what: string) {
    super();
    this.hash = createHash(expected.algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest('base64');
    if (actual !== this.expected.digest) {
      callback(new NpmError('NPM_INTEGRITY_MISMATCH', `${this.what}: the tarball does not match the registry's integrity (${this.expected.algorithm}-${this.expected.digest}, got ${this.expected.algorithm}-${actual}); refusing to install it`));
      return;
    }
    callback();
  }
}

import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { OciError } from './errors.js';

/**
 * Passes a blob through while hashing and counting it; at the end (or as soon
 * as it runs long) the stream fails with a typed error if size or digest are
 * not what the descriptor says. Nothing unverified is ever reported as done.
 */
export function verifyingStream(
  expected: { digest: string; size: number },
  makeError: (code: 'BLOB_SIZE_MISMATCH' | 'BLOB_DIGEST_MISMATCH', message: string) => Error = (code, message) => new OciError(code, message),
): Transform {
  const [algorithm, hex] = expected.digest.split(':');
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new OciError('DIGEST_UNSUPPORTED', `unsupported digest algorithm in ${expected.digest}`);
  }
  const hash = createHash(algorithm);
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (expected.size >= 0 && seen > expected.size) {
        callback(makeError('BLOB_SIZE_MISMATCH', `blob ${expected.digest} is longer than its ${expected.size} bytes`));
        return;
      }
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      if (expected.size >= 0 && seen !== expected.size) {
        callback(makeError('BLOB_SIZE_MISMATCH', `blob ${expected.digest} has ${seen} bytes, expected ${expected.size}`));
        return;
      }
      const actual = hash.digest('hex');
      if (actual !== hex) {
        callback(makeError('BLOB_DIGEST_MISMATCH', `blob content hashes to ${algorithm}:${actual}, expected ${expected.digest}`));
        return;
      }
      callback();
    },
  });
}

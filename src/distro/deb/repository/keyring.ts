import * as openpgp from 'openpgp';
import { AptError } from './errors.js';
import type { AptSource, RootReader } from './sources.js';

/**
 * The OpenPGP keys a source is trusted with, read from the image: its
 * Signed-By keyrings (binary or armored, or an inline armored key), else
 * apt's global trusted.gpg and trusted.gpg.d.
 */
export async function loadKeyring(root: RootReader, source: AptSource): Promise<openpgp.PublicKey[]> {
  const keys: openpgp.PublicKey[] = [];
  if (source.signedBy) {
    for (const entry of source.signedBy) {
      if (entry.includes('BEGIN PGP PUBLIC KEY BLOCK')) { keys.push(...(await readKeys(Buffer.from(entry), 'inline Signed-By key'))); continue; }
      const bytes = await root.readFile(entry.replace(/^\/+/, ''));
      if (!bytes) throw new AptError('KEYRING_MISSING', `${source.origin}: keyring ${entry} for ${source.uri} ${source.suite} is not in the image`);
      keys.push(...(await readKeys(bytes, entry)));
    }
  } else {
    const paths = ['etc/apt/trusted.gpg', ...root.readdir('etc/apt/trusted.gpg.d').filter((n) => /\.(gpg|asc)$/.test(n)).map((n) => `etc/apt/trusted.gpg.d/${n}`)];
    for (const path of paths) {
      const bytes = await root.readFile(path);
      if (bytes && bytes.length > 0) keys.push(...(await readKeys(bytes, `/${path}`)));
    }
  }
  if (keys.length === 0) throw new AptError('KEYRING_MISSING', `${source.origin}: no OpenPGP keys to verify ${source.uri} ${source.suite} with`);
  return keys;
}

async function readKeys(bytes: Buffer, what: string): Promise<openpgp.PublicKey[]> {
  try {
    const text = bytes.subarray(0, 64).toString('latin1');
    return text.includes('-----BEGIN PGP')
      ? await openpgp.readKeys({ armoredKeys: bytes.toString('utf8') })
      : await openpgp.readKeys({ binaryKeys: new Uint8Array(bytes) });
  } catch (error) {
    throw new AptError('KEYRING_MISSING', `cannot read OpenPGP keys from ${what}: ${(error as Error).message}`, { cause: error });
  }
}

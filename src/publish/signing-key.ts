import { createPrivateKey, createPublicKey, scrypt as scryptCallback, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import nacl from 'tweetnacl';
import { codedError } from '../lib/errors.js';

const signingCodes = {
  SIGNING_KEY_UNREADABLE: 'input',
  SIGNING_KEY_INVALID: 'input',
  SIGNING_KEY_UNSUPPORTED: 'unsupported',
  SIGNING_PASSWORD_MISSING: 'input',
  SIGNING_PASSWORD_WRONG: 'input',
} as const;

/** Signing-key failures. Messages name the key file, never its content or the password. */
export class SigningKeyError extends codedError(signingCodes) {}

/** Signs payloads with patchd's key, as cosign's verifier expects: ECDSA P-256 over SHA-256, ASN.1 DER. */
export interface ManifestSigner {
  sign(payload: Buffer): Promise<Buffer>;
  /** The public half (SPKI PEM), what `cosign verify --key` is given. */
  readonly publicKeyPem: string;
}

/** The password in environment variable `name`, when it is set (an empty one is a password too: cosign allows it). */
export function signingPassword(env: Readonly<Record<string, string | undefined>>, name = 'PATCHD_SIGNING_PASSWORD'): { password?: string } {
  const value = env[name];
  return value === undefined ? {} : { password: value };
}

const scrypt = promisify(scryptCallback) as (password: Buffer, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** The PEM types `cosign generate-key-pair` writes (older releases wrote the COSIGN one). */
const cosignPemTypes = ['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY'];

/** The scrypt parameters go-securesystemslib's `encrypted` package accepts (legacy, standard, OWASP); anything else is refused as it is there. */
const knownScryptParams = [{ N: 32768, r: 8, p: 1 }, { N: 65536, r: 8, p: 1 }, { N: 131072, r: 8, p: 1 }];

/**
 * The signer for a key file: an unencrypted PKCS#8 (or SEC1) PEM EC P-256 key
 * as `openssl genpkey` writes it, an encrypted PKCS#8 PEM, or cosign's own
 * encrypted key from `cosign generate-key-pair` (scrypt + NaCl secretbox
 * around a PKCS#8 key). The key is held as a KeyObject; its bytes and the
 * password are never logged or put in an error.
 */
export async function loadSigner(options: { readonly keyFile: string; readonly password?: string }): Promise<ManifestSigner> {
  const { keyFile, password } = options;
  let text: string;
  try {
    text = await readFile(keyFile, 'utf8');
  } catch (error) {
    throw new SigningKeyError('SIGNING_KEY_UNREADABLE', `cannot read the signing key ${keyFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const pemType = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
  if (!pemType) throw new SigningKeyError('SIGNING_KEY_INVALID', `${keyFile} is not a PEM file`);

  let key: KeyObject;
  if (cosignPemTypes.includes(pemType)) {
    if (password === undefined) throw new SigningKeyError('SIGNING_PASSWORD_MISSING', `${keyFile} is a cosign key encrypted with a password; set PATCHD_SIGNING_PASSWORD (an empty one is allowed)`);
    key = await decryptCosignKey(keyFile, pemBody(text, pemType), password);
  } else {
    if (pemType === 'ENCRYPTED PRIVATE KEY' && password === undefined) {
      throw new SigningKeyError('SIGNING_PASSWORD_MISSING', `${keyFile} is an encrypted PKCS#8 key; set PATCHD_SIGNING_PASSWORD`);
    }
    try {
      key = createPrivateKey({ key: text, format: 'pem', ...(password !== undefined ? { passphrase: password } : {}) });
    } catch (error) {
      if (pemType === 'ENCRYPTED PRIVATE KEY') throw new SigningKeyError('SIGNING_PASSWORD_WRONG', `cannot decrypt the signing key ${keyFile}: wrong password`);
      throw new SigningKeyError('SIGNING_KEY_INVALID', `${keyFile} holds no private key node can read (${(error as { code?: string }).code ?? 'parse error'})`);
    }
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : key.asymmetricKeyType ?? key.type;
    throw new SigningKeyError('SIGNING_KEY_UNSUPPORTED', `${keyFile} is a ${kind} key; patchd signs with ECDSA P-256 keys (cosign's default)`);
  }
  const publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  return {
    publicKeyPem,
    // ECDSA with SHA-256, DER-encoded (node's default dsaEncoding), as sigstore's ECDSA verifier reads it.
    sign: async (payload) => sign('sha256', payload, key),
  };
}

function pemBody(text: string, type: string): Buffer {
  const match = new RegExp(`-----BEGIN ${type}-----([\\s\\S]*?)-----END ${type}-----`).exec(text);
  return Buffer.from((match?.[1] ?? '').replace(/\s+/g, ''), 'base64');
}

interface CosignEncrypted {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

/** go-securesystemslib `encrypted.Decrypt`: JSON {kdf: scrypt, cipher: nacl/secretbox, ciphertext}, byte fields base64. */
async function decryptCosignKey(keyFile: string, body: Buffer, password: string): Promise<KeyObject> {
  let data: CosignEncrypted;
  try {
    data = JSON.parse(body.toString('utf8')) as CosignEncrypted;
  } catch {
    throw new SigningKeyError('SIGNING_KEY_INVALID', `${keyFile}: the encrypted key is not the JSON cosign writes`);
  }
  if (data?.kdf?.name !== 'scrypt' || data.cipher?.name !== 'nacl/secretbox' || typeof data.ciphertext !== 'string') {
    throw new SigningKeyError('SIGNING_KEY_UNSUPPORTED', `${keyFile}: expected scrypt and nacl/secretbox, found ${String(data?.kdf?.name)} and ${String(data?.cipher?.name)}`);
  }
  const { N, r, p } = data.kdf.params ?? {};
  if (!knownScryptParams.some((k) => k.N === N && k.r === r && k.p === p)) {
    throw new SigningKeyError('SIGNING_KEY_UNSUPPORTED', `${keyFile}: unsupported scrypt parameters N=${N} r=${r} p=${p}`);
  }
  const nonce = Buffer.from(data.cipher.nonce, 'base64');
  if (nonce.length !== nacl.secretbox.nonceLength) throw new SigningKeyError('SIGNING_KEY_INVALID', `${keyFile}: the nonce is ${nonce.length} bytes, not ${nacl.secretbox.nonceLength}`);
  const boxKey = await scrypt(Buffer.from(password, 'utf8'), Buffer.from(data.kdf.salt, 'base64'), nacl.secretbox.keyLength, { N, r, p, maxmem: 256 * N * r + 2 ** 20 });
  const plain = nacl.secretbox.open(Buffer.from(data.ciphertext, 'base64'), nonce, boxKey);
  boxKey.fill(0);
  if (!plain) throw new SigningKeyError('SIGNING_PASSWORD_WRONG', `cannot decrypt the signing key ${keyFile}: wrong password`);
  try {
    return createPrivateKey({ key: Buffer.from(plain), format: 'der', type: 'pkcs8' });
  } catch {
    throw new SigningKeyError('SIGNING_KEY_INVALID', `${keyFile}: the decrypted key is not PKCS#8`);
  } finally {
    plain.fill(0);
  }
}

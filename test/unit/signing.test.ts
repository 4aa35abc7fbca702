import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isOwnOutput } from '../../src/app/webhooks/events.js';
import { loadConfig } from '../../src/config.js';
import { cosignSignatureTag, simpleSigningPayload } from '../../src/publish/cosign.js';
import { loadSigner, SigningKeyError } from '../../src/publish/signing-key.js';
import { tmpDir, type TempDir } from '../harness/tools.js';

// Key loading and the payload's exact bytes; cosign itself checks the
// signatures in test/e2e/sign-cosign.test.ts.

let work: TempDir;
before(async () => { work = await tmpDir('patchd-signing-unit'); });
after(async () => { await work?.remove(); });

async function keyFile(name: string, pem: string): Promise<string> {
  const path = join(work.path, name);
  await writeFile(path, pem);
  return path;
}

async function rejected(promise: Promise<unknown>, code: string, what: string): Promise<SigningKeyError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof SigningKeyError, `${what}: a SigningKeyError, got ${String(error)}`);
  assert.equal(error.code, code, `${what}: code`);
  return error;
}

test('an unencrypted PKCS#8 P-256 key signs ECDSA/SHA-256 (DER) that its public key verifies', async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const path = await keyFile('p256.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  const signer = await loadSigner({ keyFile: path });
  const payload = Buffer.from('payload');
  const signature = await signer.sign(payload);
  assert.equal(signature[0], 0x30, 'an ASN.1 SEQUENCE (DER), as sigstore reads ECDSA signatures');
  assert.ok(verify('sha256', payload, createPublicKey(signer.publicKeyPem), signature), 'the public key verifies it');
  assert.match(signer.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/, 'SPKI PEM, what cosign verify --key reads');
});

test('an encrypted PKCS#8 key needs its password; a wrong one is SIGNING_PASSWORD_WRONG and not in the message', async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const path = await keyFile('enc.pem', privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'right-one' }).toString());
  await rejected(loadSigner({ keyFile: path }), 'SIGNING_PASSWORD_MISSING', 'no password');
  const wrong = await rejected(loadSigner({ keyFile: path, password: 'guess-123' }), 'SIGNING_PASSWORD_WRONG', 'wrong password');
  assert.ok(!wrong.message.includes('guess-123'), 'the password is not in the message');
  const signer = await loadSigner({ keyFile: path, password: 'right-one' });
  assert.ok(signer.publicKeyPem.length > 0, 'the right password loads it');
});

test('other curves, RSA, non-PEM files and missing files are refused with typed errors', async () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const e = await rejected(loadSigner({ keyFile: await keyFile('p384.pem', p384) }), 'SIGNING_KEY_UNSUPPORTED', 'P-384');
  assert.match(e.message, /secp384r1.*P-256/, 'the message names the curve and what is needed');
  await rejected(loadSigner({ keyFile: await keyFile('rsa.pem', rsa) }), 'SIGNING_KEY_UNSUPPORTED', 'RSA');
  await rejected(loadSigner({ keyFile: await keyFile('junk.pem', 'not a key') }), 'SIGNING_KEY_INVALID', 'not PEM');
  await rejected(loadSigner({ keyFile: join(work.path, 'absent.pem') }), 'SIGNING_KEY_UNREADABLE', 'absent');
  const body = 'eyJrZGYiOnsibmFtZSI6ImFyZ29uMiJ9fQ=='; // {"kdf":{"name":"argon2"}}
  await rejected(loadSigner({ keyFile: await keyFile('odd.key', `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`), password: '' }), 'SIGNING_KEY_UNSUPPORTED', 'unknown KDF');
});

test("the simple-signing payload is cosign's JSON, byte for byte; the tag is cosign's", () => {
  const digest = `sha256:${'ab'.repeat(32)}`;
  assert.equal(
    simpleSigningPayload({ registry: '127.0.0.1:5000', repository: 'team/app' }, digest).toString(),
    `{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/team/app"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
    'the payload',
  );
  assert.match(simpleSigningPayload({ registry: 'docker.io', repository: 'library/debian' }, digest).toString(), /"docker-reference":"index\.docker\.io\/library\/debian"/, "Docker Hub as go-containerregistry names it");
  assert.equal(cosignSignatureTag(digest), `sha256-${'ab'.repeat(32)}.sig`, 'the tag');
});

test('config: signing.keyFile with the password variable defaulting to PATCHD_SIGNING_PASSWORD; the webhook ignores signature tags', () => {
  const base = 'registries:\n  local: { url: "http://127.0.0.1:5000" }\n';
  assert.deepEqual(loadConfig({}, `${base}signing: { keyFile: /keys/cosign.key }\n`).signing, { keyFile: '/keys/cosign.key', passwordEnv: 'PATCHD_SIGNING_PASSWORD' }, 'defaults');
  assert.throws(() => loadConfig({}, `${base}signing: { keyFile: k, password: hunter2 }\n`), /password/, 'no password in the file');
  const tag = cosignSignatureTag(`sha256:${'cd'.repeat(32)}`);
  assert.match(isOwnOutput({ source: 'distribution', host: 'h', repository: 'r', trigger: 'push', tag }, { tagSuffix: '-patched' }) ?? '', /signatures or referrers/, 'a .sig push is not an image to patch');
  assert.equal(isOwnOutput({ source: 'distribution', host: 'h', repository: 'r', trigger: 'push', tag: 'sha256-release' }, { tagSuffix: '-patched' }), undefined, 'an ordinary tag is not ignored');
});

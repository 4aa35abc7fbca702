import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Constant-time string equality (hashing first makes the lengths equal). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** Harbor, ACR and distribution send a configured header verbatim: the secret itself, or `Bearer <secret>`. */
export function authorizationMatches(header: string | undefined, secret: string): boolean {
  if (!header) return false;
  const value = header.trim();
  return safeEqual(value, secret) || safeEqual(value, `Bearer ${secret}`);
}

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, checked over the raw bytes. */
export function githubSignatureMatches(header: string | undefined, secret: string, rawBody: Uint8Array): boolean {
  if (!header?.startsWith('sha256=')) return false;
  const expected = `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
  return safeEqual(header, expected);
}

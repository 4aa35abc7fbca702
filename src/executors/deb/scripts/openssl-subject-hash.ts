import { createHash } from 'node:crypto';
import { DebError } from '../../../distro/deb/errors.js';

/**
 * OpenSSL's X509_NAME_hash (what `openssl rehash` names `<hash>.0` links
 * after): SHA-1 over the canonical encoding of the subject name, first four
 * bytes read little-endian. Canonical encoding (crypto/x509/x_name.c): every
 * string value converted to UTF8String, lower-cased (ASCII), leading and
 * trailing whitespace removed and inner runs collapsed to one space; the RDN
 * sets DER-encoded one after another without the outer SEQUENCE header.
 */
export function subjectNameHash(certificateDer: Buffer): string {
  const subject = certificateSubject(certificateDer);
  const rdns = readChildren(subject).map((set) => {
    const avas = readChildren(set).map((ava) => {
      const [oid, value] = readChildren(ava);
      if (!oid || !value) throw new DebError('CERTIFICATE_INVALID', 'malformed AttributeTypeAndValue');
      return encode(0x30, Buffer.concat([oid.raw, canonicalValue(value)]));
    });
    avas.sort(Buffer.compare); // DER orders SET OF members by encoding
    return encode(0x31, Buffer.concat(avas));
  });
  const digest = createHash('sha1').update(Buffer.concat(rdns)).digest();
  return digest.readUInt32LE(0).toString(16).padStart(8, '0');
}

/** SHA-1 of the DER certificate: how rehash spots the same certificate twice. */
export function certificateFingerprint(der: Buffer): string {
  return createHash('sha1').update(der).digest('hex');
}

/** The DER of every certificate in a PEM text, in order. */
export function pemCertificates(pem: string): Buffer[] {
  const out: Buffer[] = [];
  const re = /-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----([\s\S]*?)-----END (?:X509 |TRUSTED )?CERTIFICATE-----/g;
  for (let m = re.exec(pem); m; m = re.exec(pem)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}

interface Tlv { tag: number; raw: Buffer; content: Buffer }

function readTlv(buf: Buffer, offset: number): Tlv & { end: number } {
  const tag = buf[offset];
  let lenByte = buf[offset + 1];
  if (tag === undefined || lenByte === undefined) throw new DebError('CERTIFICATE_INVALID', 'truncated DER');
  let length = lenByte;
  let header = 2;
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f;
    if (n === 0 || n > 4) throw new DebError('CERTIFICATE_INVALID', 'unsupported DER length');
    length = 0;
    for (let i = 0; i < n; i++) {
      lenByte = buf[offset + 2 + i];
      if (lenByte === undefined) throw new DebError('CERTIFICATE_INVALID', 'truncated DER');
      length = length * 256 + lenByte;
    }
    header += n;
  }
  const end = offset + header + length;
  if (end > buf.length) throw new DebError('CERTIFICATE_INVALID', 'truncated DER');
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + header, end), end };
}

function readChildren(parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = 0; offset < parent.content.length;) {
    const child = readTlv(parent.content, offset);
    out.push(child);
    offset = child.end;
  }
  return out;
}

/** Certificate → tbsCertificate → [version] serial signature issuer validity subject. */
function certificateSubject(der: Buffer): Tlv {
  const cert = readTlv(der, 0);
  const tbs = readChildren(cert)[0];
  if (!tbs) throw new DebError('CERTIFICATE_INVALID', 'malformed certificate');
  const fields = readChildren(tbs);
  const start = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[start + 4];
  if (!subject || subject.tag !== 0x30) throw new DebError('CERTIFICATE_INVALID', 'malformed certificate subject');
  return subject;
}

const utf8String = 0x0c;
// UTF8String, PrintableString, T61String, IA5String, VisibleString, UniversalString, BMPString (ASN1_MASK_CANON).
const canonicalTypes = new Set([0x0c, 0x13, 0x14, 0x16, 0x1a, 0x1c, 0x1e]);

function canonicalValue(value: Tlv): Buffer {
  if (!canonicalTypes.has(value.tag)) return value.raw;
  let text: string;
  if (value.tag === 0x1e) text = Buffer.from(value.content.subarray(0, value.content.length & ~1)).swap16().toString('utf16le');
  else if (value.tag === 0x1c) text = String.fromCodePoint(...Array.from({ length: value.content.length / 4 }, (_, i) => value.content.readUInt32BE(i * 4)));
  else if (value.tag === utf8String) text = value.content.toString('utf8');
  else text = value.content.toString('latin1');
  const bytes = Buffer.from(text, 'utf8');
  // Whitespace per ossl_isspace; lower-casing per ossl_tolower (ASCII only), on the UTF-8 bytes.
  const isSpace = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);
  let start = 0;
  let end = bytes.length;
  while (start < end && isSpace(bytes[start]!)) start++;
  while (end > start && isSpace(bytes[end - 1]!)) end--;
  const out: number[] = [];
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (isSpace(b)) {
      out.push(0x20);
      while (i + 1 < end && isSpace(bytes[i + 1]!)) i++;
    } else {
      out.push(b >= 0x41 && b <= 0x5a ? b + 0x20 : b);
    }
  }
  return encode(utf8String, Buffer.from(out));
}

function encode(tag: number, content: Buffer): Buffer {
  const len = content.length;
  let header: Buffer;
  if (len < 0x80) header = Buffer.from([tag, len]);
  else {
    const bytes: number[] = [];
    for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
    header = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([header, content]);
}

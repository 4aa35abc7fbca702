import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';

/**
 * The entries of a zip file read through its central directory (the
 * per-ecosystem `all.zip` files OSV publishes). Stored and deflated entries;
 * each entry is bounded so a hostile archive cannot exhaust memory.
 */
export async function* zipEntries(file: FileHandle, maxEntryBytes = 16 * 2 ** 20): AsyncGenerator<{ name: string; data: Buffer }> {
  const { size } = await file.stat();
  const tailSize = Math.min(size, 65_557);
  const tail = Buffer.alloc(tailSize);
  await file.read(tail, 0, tailSize, size - tailSize);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('not a zip file (no end of central directory)');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff) {
    // ZIP64: the locator sits just before the classic record.
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw new Error('zip64 archive without a locator');
    const record = Buffer.alloc(56);
    await file.read(record, 0, 56, Number(tail.readBigUInt64LE(locator + 8)));
    count = Number(record.readBigUInt64LE(32));
    cdSize = Number(record.readBigUInt64LE(40));
    cdOffset = Number(record.readBigUInt64LE(48));
  }
  const cd = Buffer.alloc(cdSize);
  await file.read(cd, 0, cdSize, cdOffset);
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (cd.readUInt32LE(at) !== 0x02014b50) throw new Error(`corrupt central directory at entry ${i}`);
    const method = cd.readUInt16LE(at + 10);
    let compressed = cd.readUInt32LE(at + 20);
    let uncompressed = cd.readUInt32LE(at + 24);
    const nameLength = cd.readUInt16LE(at + 28);
    const extraLength = cd.readUInt16LE(at + 30);
    const commentLength = cd.readUInt16LE(at + 32);
    let localOffset = cd.readUInt32LE(at + 42);
    const name = cd.toString('utf8', at + 46, at + 46 + nameLength);
    const extra = cd.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength);
    ({ compressed, uncompressed, localOffset } = zip64Sizes(extra, { compressed, uncompressed, localOffset }));
    at += 46 + nameLength + extraLength + commentLength;
    if (name.endsWith('/')) continue;
    if (uncompressed > maxEntryBytes || compressed > maxEntryBytes) throw new Error(`zip entry ${name} is larger than ${maxEntryBytes} bytes`);
    const local = Buffer.alloc(30);
    await file.read(local, 0, 30, localOffset);
    if (local.readUInt32LE(0) !== 0x04034b50) throw new Error(`corrupt local header for ${name}`);
    const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    const raw = Buffer.alloc(compressed);
    await file.read(raw, 0, compressed, dataStart);
    if (method === 0) yield { name, data: raw };
    else if (method === 8) yield { name, data: inflateRawSync(raw, { maxOutputLength: maxEntryBytes }) };
    else throw new Error(`zip entry ${name} uses unsupported compression method ${method}`);
  }
}

function zip64Sizes(extra: Buffer, sizes: { compressed: number; uncompressed: number; localOffset: number }) {
  const out = { ...sizes };
  for (let at = 0; at + 4 <= extra.length;) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === 0x0001) {
      let p = at + 4;
      if (out.uncompressed === 0xffffffff) { out.uncompressed = Number(extra.readBigUInt64LE(p)); p += 8; }
      if (out.compressed === 0xffffffff) { out.compressed = Number(extra.readBigUInt64LE(p)); p += 8; }
      if (out.localOffset === 0xffffffff) out.localOffset = Number(extra.readBigUInt64LE(p));
    }
    at += 4 + length;
  }
  return out;
}

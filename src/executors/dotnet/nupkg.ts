import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { DotnetError } from './errors.js';

/**
 * A .nupkg (a zip) read through its central directory: the names first, then
 * only the entries asked for, each bounded so a hostile package cannot
 * exhaust memory. (scan/sources/zip.ts reads every entry of OSV's archives in
 * turn; a package is read selectively.)
 */
export interface NupkgArchive {
  /** Entry names as stored (OPC percent-encoding kept), directories left out. */
  readonly names: readonly string[];
  read(name: string, maxBytes?: number): Promise<Buffer>;
}

interface Entry { readonly method: number; readonly compressed: number; readonly size: number; readonly localOffset: number }

const defaultMaxEntryBytes = 256 * 2 ** 20;

export async function openNupkg(file: FileHandle, label: string): Promise<NupkgArchive> {
  const fail = (why: string) => new DotnetError('NUPKG_INVALID', `${label} is not a valid .nupkg: ${why}`);
  const { size } = await file.stat();
  const tailSize = Math.min(size, 65_557);
  const tail = Buffer.alloc(tailSize);
  await file.read(tail, 0, tailSize, size - tailSize);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0 || eocd + 22 > tail.length) throw fail('no end of central directory');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff || cdSize === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw fail('zip64 archive without a locator');
    const record = Buffer.alloc(56);
    await file.read(record, 0, 56, Number(tail.readBigUInt64LE(locator + 8)));
    if (record.readUInt32LE(0) !== 0x06064b50) throw fail('damaged zip64 end record');
    count = Number(record.readBigUInt64LE(32));
    cdSize = Number(record.readBigUInt64LE(40));
    cdOffset = Number(record.readBigUInt64LE(48));
  }
  if (cdOffset + cdSize > size || cdSize > 64 * 2 ** 20) throw fail('central directory out of bounds');
  const cd = Buffer.alloc(cdSize);
  await file.read(cd, 0, cdSize, cdOffset);
  const entries = new Map<string, Entry>();
  let at = 0;
  try {
    for (let i = 0; i < count; i++) {
      if (cd.readUInt32LE(at) !== 0x02014b50) throw fail(`corrupt central directory at entry ${i}`);
      const flags = cd.readUInt16LE(at + 8);
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
      if (flags & 0x1) throw fail(`entry ${name} is encrypted`);
      if (entries.has(name)) throw fail(`entry ${name} appears twice`);
      entries.set(name, { method, compressed, size: uncompressed, localOffset });
    }
  } catch (error) {
    if (error instanceof RangeError) throw fail('central directory ends early');
    throw error;
  }

  return {
    names: [...entries.keys()],
    async read(name, maxBytes = defaultMaxEntryBytes) {
      const entry = entries.get(name);
      if (!entry) throw fail(`no entry ${name}`);
      if (entry.size > maxBytes || entry.compressed > maxBytes) throw fail(`entry ${name} is larger than ${maxBytes} bytes`);
      const local = Buffer.alloc(30);
      await file.read(local, 0, 30, entry.localOffset);
      if (local.readUInt32LE(0) !== 0x04034b50) throw fail(`corrupt local header for ${name}`);
      const dataStart = entry.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (dataStart + entry.compressed > size) throw fail(`entry ${name} runs past the end of the file`);
      const raw = Buffer.alloc(entry.compressed);
      await file.read(raw, 0, entry.compressed, dataStart);
      let data: Buffer;
      if (entry.method === 0) data = raw;
      else if (entry.method === 8) {
        try { data = inflateRawSync(raw, { maxOutputLength: Math.max(entry.size, 1) }); } catch (error) { throw fail(`entry ${name} does not inflate: ${(error as Error).message}`); }
      } else throw fail(`entry ${name} uses compression method ${entry.method}`);
      if (data.length !== entry.size) throw fail(`entry ${name} is ${data.length} bytes, the directory says ${entry.size}`);
      return data;
    },
  };
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

import type { FileHandle } from 'node:fs/promises';
import { pipeline, Readable, Transform } from 'node:stream';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import { codedError, type ErrorCodes } from './errors.js';

/** A zip archive that is damaged, hostile or of a kind we do not read. */
export const zipCodes = { ZIP_INVALID: 'input' } as const satisfies ErrorCodes;
export class ZipError extends codedError(zipCodes) {}
const invalid = (message: string) => new ZipError('ZIP_INVALID', message);

/** One file of a zip archive, as its central directory describes it. */
export interface ZipEntry {
  readonly name: string;
  /** 0 stored, 8 deflated. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc32: number;
  /** Unix mode bits when the archive was made on Unix (upper half of the external attributes), else 0. */
  readonly unixMode: number;
  readonly localHeaderOffset: number;
}

/**
 * The central directory of a zip file: every entry (directories included,
 * their names end in '/'), without reading any entry's data.
 */
export async function readZipDirectory(file: FileHandle): Promise<ZipEntry[]> {
  const { size } = await file.stat();
  const tailSize = Math.min(size, 65_557);
  const tail = Buffer.alloc(tailSize);
  await file.read(tail, 0, tailSize, size - tailSize);
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw invalid('not a zip file (no end of central directory)');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || count === 0xffff || cdSize === 0xffffffff) {
    // ZIP64: the locator sits just before the classic record.
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw invalid('zip64 archive without a locator');
    const record = Buffer.alloc(56);
    await file.read(record, 0, 56, Number(tail.readBigUInt64LE(locator + 8)));
    if (record.readUInt32LE(0) !== 0x06064b50) throw invalid('damaged zip64 end of central directory record');
    count = Number(record.readBigUInt64LE(32));
    cdSize = Number(record.readBigUInt64LE(40));
    cdOffset = Number(record.readBigUInt64LE(48));
  }
  if (cdOffset + cdSize > size) throw invalid('central directory lies beyond the end of the file');
  if (cdSize > 64 * 2 ** 20) throw invalid(`central directory of ${cdSize} bytes is larger than 64 MiB`);
  const cd = Buffer.alloc(cdSize);
  await file.read(cd, 0, cdSize, cdOffset);
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cd.length || cd.readUInt32LE(at) !== 0x02014b50) throw invalid(`corrupt central directory at entry ${i}`);
    const madeBy = cd.readUInt8(at + 5);
    const flags = cd.readUInt16LE(at + 8);
    const method = cd.readUInt16LE(at + 10);
    const crc32 = cd.readUInt32LE(at + 16);
    let compressed = cd.readUInt32LE(at + 20);
    let uncompressed = cd.readUInt32LE(at + 24);
    const nameLength = cd.readUInt16LE(at + 28);
    const extraLength = cd.readUInt16LE(at + 30);
    const commentLength = cd.readUInt16LE(at + 32);
    const external = cd.readUInt32LE(at + 38);
    let localOffset = cd.readUInt32LE(at + 42);
    const name = cd.toString('utf8', at + 46, at + 46 + nameLength);
    const extra = cd.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength);
    ({ compressed, uncompressed, localOffset } = zip64Sizes(extra, { compressed, uncompressed, localOffset }));
    at += 46 + nameLength + extraLength + commentLength;
    if (flags & 0x1) throw invalid(`zip entry ${name} is encrypted`);
    // Host 3 is Unix: the high 16 bits of the external attributes are st_mode.
    entries.push({ name, method, compressedSize: compressed, size: uncompressed, crc32, unixMode: madeBy === 3 ? (external >>> 16) & 0xffff : 0, localHeaderOffset: localOffset });
  }
  return entries;
}

/** Where an entry's data starts (after its local header, whose name and extra lengths may differ from the central directory's). */
async function dataStart(file: FileHandle, entry: ZipEntry): Promise<number> {
  const local = Buffer.alloc(30);
  await file.read(local, 0, 30, entry.localHeaderOffset);
  if (local.readUInt32LE(0) !== 0x04034b50) throw invalid(`corrupt local header for ${entry.name}`);
  return entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
}

/**
 * Streams one entry's uncompressed bytes; the stream fails if the data is
 * longer or shorter than the central directory says, so a hostile archive
 * cannot inflate past its declared size. The handle stays open.
 */
export async function openZipEntry(file: FileHandle, entry: ZipEntry): Promise<Readable> {
  if (entry.method !== 0 && entry.method !== 8) throw invalid(`zip entry ${entry.name} uses unsupported compression method ${entry.method}`);
  const start = await dataStart(file, entry);
  const raw = Readable.from(byteRange(file, start, entry.compressedSize));
  let seen = 0;
  const bounded = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > entry.size) callback(invalid(`zip entry ${entry.name} inflates past its declared ${entry.size} bytes`));
      else callback(null, chunk);
    },
    flush(callback) {
      callback(seen === entry.size ? null : invalid(`zip entry ${entry.name} has ${seen} bytes, not the declared ${entry.size}`));
    },
  });
  const done = () => undefined;
  return entry.method === 8 && entry.compressedSize > 0 ? pipeline(raw, createInflateRaw(), bounded, done) : pipeline(raw, bounded, done);
}

/** Positional reads of one range of the file (no stream bound to the handle, so any number may be read in turn). */
async function* byteRange(file: FileHandle, start: number, length: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < length;) {
    const chunk = Buffer.alloc(Math.min(64 * 1024, length - at));
    const { bytesRead } = await file.read(chunk, 0, chunk.length, start + at);
    if (bytesRead === 0) throw invalid('zip entry data ends early (truncated archive)');
    at += bytesRead;
    yield bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead);
  }
}

/**
 * The entries of a zip file read through its central directory (the
 * per-ecosystem `all.zip` files OSV publishes). Stored and deflated entries;
 * each entry is bounded so a hostile archive cannot exhaust memory.
 */
export async function* zipEntries(file: FileHandle, maxEntryBytes = 16 * 2 ** 20): AsyncGenerator<{ name: string; data: Buffer }> {
  for (const entry of await readZipDirectory(file)) {
    const { name, size, compressedSize, method } = entry;
    if (name.endsWith('/')) continue;
    if (size > maxEntryBytes || compressedSize > maxEntryBytes) throw invalid(`zip entry ${name} is larger than ${maxEntryBytes} bytes`);
    const raw = Buffer.alloc(compressedSize);
    await file.read(raw, 0, compressedSize, await dataStart(file, entry));
    if (method === 0) yield { name, data: raw };
    else if (method === 8) yield { name, data: inflateRawSync(raw, { maxOutputLength: maxEntryBytes }) };
    else throw invalid(`zip entry ${name} uses unsupported compression method ${method}`);
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

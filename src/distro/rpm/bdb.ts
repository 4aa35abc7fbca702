import type { FileHandle } from 'node:fs/promises';
import { RpmError } from './errors.js';

/**
 * The values of a Berkeley DB hash database (rpm's legacy `Packages`), read
 * page by page: hash pages hold key/data pairs, large data lives on chains of
 * overflow pages. Keys (rpm's header numbers) are not needed.
 */
const hashMagic = 0x061561;
const PageType = { overflow: 7, hashUnsorted: 2, hash: 13 } as const;
const ItemType = { keyData: 1, offPage: 3 } as const;
const pageHeaderSize = 26;

export async function* bdbHashValues(file: FileHandle): AsyncGenerator<Buffer> {
  const meta = Buffer.alloc(512);
  await file.read(meta, 0, 512, 0);
  let le = true;
  if (meta.readUInt32LE(12) !== hashMagic) {
    if (meta.readUInt32BE(12) !== hashMagic) throw new RpmError('RPMDB_INVALID', 'not a Berkeley DB hash database');
    le = false;
  }
  const u32 = (b: Buffer, at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const u16 = (b: Buffer, at: number) => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const pageSize = u32(meta, 20);
  const lastPage = u32(meta, 32);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new RpmError('RPMDB_INVALID', `implausible page size ${pageSize}`);
  if (u32(meta, 24) & 0xff) throw new RpmError('RPMDB_UNSUPPORTED', 'encrypted Berkeley DB databases are not supported');
  const readPage = async (pgno: number): Promise<Buffer> => {
    const page = Buffer.alloc(pageSize);
    const { bytesRead } = await file.read(page, 0, pageSize, pgno * pageSize);
    if (bytesRead !== pageSize) throw new RpmError('RPMDB_INVALID', `page ${pgno} is truncated`);
    return page;
  };
  const readOverflow = async (start: number, total: number): Promise<Buffer> => {
    const parts: Buffer[] = [];
    let length = 0;
    const seen = new Set<number>();
    for (let pgno = start; pgno !== 0 && length < total;) {
      if (seen.has(pgno) || pgno > lastPage) throw new RpmError('RPMDB_INVALID', `overflow chain loops or leaves the file at page ${pgno}`);
      seen.add(pgno);
      const page = await readPage(pgno);
      if (page[25] !== PageType.overflow) throw new RpmError('RPMDB_INVALID', `page ${pgno} is not an overflow page`);
      const used = u16(page, 22); // hf_offset holds the bytes used on overflow pages
      parts.push(page.subarray(pageHeaderSize, pageHeaderSize + used));
      length += used;
      pgno = u32(page, 16);
    }
    return Buffer.concat(parts).subarray(0, total);
  };
  for (let pgno = 1; pgno <= lastPage; pgno++) {
    const page = await readPage(pgno);
    const type = page[25];
    if (type !== PageType.hash && type !== PageType.hashUnsorted) continue;
    const entries = u16(page, 20);
    // Entries alternate key, data; offsets index items stored from the page's end downwards.
    for (let i = 1; i < entries; i += 2) {
      const offset = u16(page, pageHeaderSize + i * 2);
      const end = u16(page, pageHeaderSize + (i - 1) * 2);
      const itemType = page[offset];
      if (itemType === ItemType.offPage) {
        const start = u32(page, offset + 4);
        const total = u32(page, offset + 8);
        yield await readOverflow(start, total);
      } else if (itemType === ItemType.keyData) {
        yield page.subarray(offset + 1, end);
      }
    }
  }
}

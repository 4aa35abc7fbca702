import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evrOf, parseRpmHeader, sourcePackageOf, splitSourceRpm } from '../../src/distro/rpm/header.js';

/** An rpm database header blob (index count, data length, 16-byte entries, data store), as rpm stores one per package. */
function header(tags: readonly [tag: number, value: string | number][]): Buffer {
  const entries: Buffer[] = [];
  const data: Buffer[] = [];
  let offset = 0;
  for (const [tag, value] of tags) {
    // INT32 values are 4-byte aligned in the store.
    if (typeof value === 'number' && offset % 4 !== 0) { data.push(Buffer.alloc(4 - (offset % 4))); offset += 4 - (offset % 4); }
    const bytes = typeof value === 'number' ? Buffer.alloc(4) : Buffer.from(`${value}\0`, 'utf8');
    if (typeof value === 'number') bytes.writeUInt32BE(value);
    const entry = Buffer.alloc(16);
    entry.writeUInt32BE(tag, 0);
    entry.writeUInt32BE(typeof value === 'number' ? 4 : 6, 4);
    entry.writeUInt32BE(offset, 8);
    entry.writeUInt32BE(1, 12);
    entries.push(entry);
    data.push(bytes);
    offset += bytes.length;
  }
  const preamble = Buffer.alloc(8);
  preamble.writeUInt32BE(entries.length, 0);
  preamble.writeUInt32BE(offset, 4);
  return Buffer.concat([preamble, ...entries, ...data]);
}

// RPMTAG_NAME 1000, VERSION 1001, RELEASE 1002, EPOCH 1003, ARCH 1022, SOURCERPM 1044.
const opensslLibs = header([[1000, 'openssl-libs'], [1001, '3.0.7'], [1002, '27.el9'], [1003, 1], [1022, 'x86_64'], [1044, 'openssl-3.0.7-27.el9.src.rpm']]);

test('a binary with an epoch built from a differently named source: the source version carries the epoch', () => {
  const h = parseRpmHeader(opensslLibs);
  assert.deepEqual(h, { name: 'openssl-libs', version: '3.0.7', release: '27.el9', epoch: 1, arch: 'x86_64', sourceRpm: 'openssl-3.0.7-27.el9.src.rpm' });
  assert.equal(evrOf(h), '1:3.0.7-27.el9');
  // The file name has no epoch; advisories filed under the source name do (1:3.0.7-27.el9).
  assert.deepEqual(splitSourceRpm(h.sourceRpm!), { name: 'openssl', version: '3.0.7-27.el9' });
  assert.deepEqual(sourcePackageOf(h), { name: 'openssl', version: '1:3.0.7-27.el9' });
});

test('without an epoch (or with epoch 0) the source version is the file name\'s, and no source rpm means no source', () => {
  const plain = parseRpmHeader(header([[1000, 'libcurl'], [1001, '7.76.1'], [1002, '29.el9'], [1044, 'curl-7.76.1-29.el9.src.rpm']]));
  assert.deepEqual(sourcePackageOf(plain), { name: 'curl', version: '7.76.1-29.el9' });
  assert.equal(evrOf(plain), '7.76.1-29.el9');
  const zero = parseRpmHeader(header([[1000, 'bash'], [1001, '5.1.8'], [1002, '9.el9'], [1003, 0], [1044, 'bash-5.1.8-9.el9.src.rpm']]));
  assert.deepEqual([evrOf(zero), sourcePackageOf(zero)?.version], ['5.1.8-9.el9', '5.1.8-9.el9']);
  assert.equal(sourcePackageOf(parseRpmHeader(header([[1000, 'gpg-pubkey'], [1001, 'fd431d51'], [1002, '4ae0493b']]))), undefined);
});

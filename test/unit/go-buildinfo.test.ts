import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { readGoBuildInfo } from '../../src/scan/inventory/readers/go-buildinfo.js';

// debug/buildinfo's format: a 32-byte header ("\xff Go buildinf:", pointer size, flags with 0x2 = inline strings),
// then the Go version and the module info as varint-prefixed strings (the module info inside 16-byte sentinels).
const varString = (text: string) => Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'latin1')]);
const header = Buffer.concat([Buffer.from('\xff Go buildinf:', 'latin1'), Buffer.from([8, 0x2]), Buffer.alloc(16)]);
const modinfo = `${'0'.repeat(16)}path\texample.com/app\nmod\texample.com/app\tv1.2.3\t\ndep\tgolang.org/x/net\tv0.1.0\th1:abc=\n${'0'.repeat(15)}\n`.replace(/^0{16}/, '0123456789abcdef');
const blob = Buffer.concat([header, varString('go1.22.1'), varString(modinfo)]);
const binary = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(5000, 1), blob, Buffer.alloc(3000, 2)]);
const at = 4 + 5000;

/** The binary streamed in chunks cut at `cuts` (offsets into it). */
const chunked = (cuts: number[]) => Readable.from([0, ...cuts, binary.length].slice(1).map((end, i, ends) => binary.subarray(i === 0 ? 0 : ends[i - 1]!, end)));

test('Go build info is found wherever the stream cuts it, the magic itself included', async () => {
  const whole = await readGoBuildInfo(Readable.from([binary]));
  assert.equal(whole.kind, 'go', `found in one chunk: ${JSON.stringify(whole)}`);
  for (const cut of [at - 1, at + 1, at + 7, at + 13, at + 14, at + 20, at + 40]) {
    const result = await readGoBuildInfo(chunked([100, cut]));
    assert.deepEqual(result, whole, `a chunk boundary at ${cut - at} bytes into the magic or header finds the same`);
  }
  const tiny = await readGoBuildInfo(chunked(Array.from({ length: 400 }, (_, i) => at - 200 + i)));
  assert.deepEqual(tiny, whole, 'one-byte chunks across it find the same');
  if (whole.kind === 'go') assert.equal(whole.info.goVersion, 'go1.22.1', 'the version read');
});

test('a file that is no executable, or an executable without build info, is not Go', async () => {
  assert.equal((await readGoBuildInfo(Readable.from([Buffer.concat([Buffer.from('#!/bin/sh\n'), blob])]))).kind, 'none', 'a script is not looked into');
  assert.equal((await readGoBuildInfo(chunked([10, 20]).map((c: Buffer) => Buffer.from(c).fill(3, 4)))).kind, 'none', 'an ELF without the magic');
});

import { PassThrough, pipeline, type Readable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { xzDecompress } from './xz.js';
import { PatchdError } from '../../lib/errors.js';
import { DebError } from './errors.js';
import { zlibChunkBytes } from '../../lib/streams.js';

/** Control members are small; anything bigger is not a Debian package. */
const maxControlBytes = 64 * 1024 * 1024;

export interface DebControlMember {
  readonly name: string; // 'control', 'md5sums', 'postinst', ...
  readonly mode: number;
  readonly content: Buffer;
}

type DataConsumer = (dataTar: Readable, control: ReadonlyMap<string, DebControlMember>) => Promise<void>;

/**
 * Streams a .deb (an `ar` archive): reads control.tar.* into memory, then hands
 * the decompressed data.tar stream to `onData` and waits for it to be consumed.
 * dpkg-deb guarantees control comes before data, so one pass suffices. Without
 * `onData` the data member is skipped undecompressed.
 */
export async function readDebArchive(input: Readable, onData?: DataConsumer): Promise<ReadonlyMap<string, DebControlMember>> {
  const reader = new ByteReader(input);
  try {
    return await readMembers(reader, onData);
  } finally {
    // Whatever way the read ends, the input is closed (a no-op once it was read to its end).
    reader.close();
  }
}

async function readMembers(reader: ByteReader, onData: DataConsumer | undefined): Promise<ReadonlyMap<string, DebControlMember>> {
  const magic = await reader.read(8);
  if (magic.toString('latin1') !== '!<arch>\n') throw new DebError('DEB_INVALID', 'not a Debian package: missing ar magic');

  let control: Map<string, DebControlMember> | undefined;
  let sawData = false;
  for (;;) {
    const header = await reader.readOrEnd(60);
    if (!header) break;
    if (header.length < 60 || header.toString('latin1', 58, 60) !== '`\n') throw new DebError('DEB_INVALID', 'malformed ar member header');
    const name = header.toString('latin1', 0, 16).trim().replace(/\/$/, '');
    const size = Number.parseInt(header.toString('latin1', 48, 58).trim(), 10);
    if (!Number.isSafeInteger(size) || size < 0) throw new DebError('DEB_INVALID', `bad ar member size for ${name}`);

    if (name.startsWith('control.tar')) {
      if (size > maxControlBytes) throw new DebError('DEB_INVALID', `control member too large (${size} bytes)`);
      const raw = await reader.read(size);
      control = await readControlTar(decompress(name, bufferStream(raw), size)).catch((error: unknown) => { throw asDebError(name, error); });
    } else if (name.startsWith('data.tar') && !onData) {
      await reader.skip(size);
      sawData = true;
    } else if (name.startsWith('data.tar') && onData) {
      if (!control) throw new DebError('DEB_INVALID', 'data.tar comes before control.tar');
      const body = new PassThrough({ highWaterMark: 1 << 20 });
      const consumer = onData(decompress(name, body, size), control);
      // Surface consumer failures immediately instead of blocking on backpressure.
      let consumerError: unknown;
      consumer.catch((error) => { consumerError = error; body.destroy(); });
      try {
        await reader.pipeBytes(size, body, () => consumerError);
      } catch (error) {
        // The decompressor and the consumer reading it are torn down with the member.
        body.destroy(error as Error);
        await consumer.catch(() => undefined);
        throw error;
      }
      body.end();
      await consumer.catch((error: unknown) => { throw asDebError(name, error); });
      sawData = true;
    } else {
      await reader.skip(size);
    }
    if (size % 2 === 1) await reader.skip(1);
  }
  if (!control) throw new DebError('DEB_INVALID', 'no control.tar member');
  if (!sawData) throw new DebError('DEB_INVALID', 'no data.tar member');
  return control;
}

/** A zlib or tar failure inside a package is the package's fault: DEB_INVALID, naming the member. */
function asDebError(member: string, error: unknown): unknown {
  return error instanceof PatchdError ? error : new DebError('DEB_INVALID', `${member}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** The member's tar stream, joined to `input` both ways (xz through its web stream): a failure of either, or destroying the result, destroys both. */
function decompress(member: string, input: Readable, size: number): Readable {
  if (member.endsWith('.xz')) return xzDecompress(input, size);
  if (member.endsWith('.gz')) return pipeline(input, createGunzip({ chunkSize: zlibChunkBytes }), () => { /* failures surface on the returned stream */ });
  if (member === 'control.tar' || member === 'data.tar') return input;
  throw new DebError('DEB_UNSUPPORTED', `unsupported compression for ${member} (supported: xz, gzip, none)`);
}

async function readControlTar(stream: Readable): Promise<Map<string, DebControlMember>> {
  const members = new Map<string, DebControlMember>();
  const extract = tar.extract();
  extract.on('entry', (header, entry, next) => {
    const name = header.name.replace(/^\.\//, '');
    if (header.type !== 'file' || name.includes('/')) { entry.resume(); entry.on('end', next); return; }
    const chunks: Buffer[] = [];
    entry.on('data', (c: unknown) => chunks.push(c as Buffer));
    entry.on('end', () => {
      members.set(name, { name, mode: (header.mode ?? 0o644) & 0o7777, content: Buffer.concat(chunks) });
      next();
    });
    entry.on('error', (error) => extract.destroy(error)); // the pipeline below reports it
  });
  await pipelineAsync(stream, extract);
  if (!members.has('control')) throw new DebError('DEB_INVALID', 'control.tar has no control file');
  return members;
}

function bufferStream(buffer: Buffer): Readable {
  const s = new PassThrough();
  s.end(buffer);
  return s;
}

/** Sequential reads over a Readable without loading it whole. */
class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(input: Readable) {
    this.iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Ends the read: the input is destroyed unless it was read to its end. */
  close(): void {
    this.iterator.return?.().catch(() => undefined);
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const { value, done } = await this.iterator.next();
    if (done) { this.ended = true; return false; }
    this.pending = this.pending.length ? Buffer.concat([this.pending, value]) : value;
    return true;
  }

  async readOrEnd(n: number): Promise<Buffer | undefined> {
    while (this.pending.length < n) {
      if (!(await this.fill())) {
        if (this.pending.length === 0) return undefined;
        throw new DebError('DEB_INVALID', 'truncated ar archive');
      }
    }
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }

  async read(n: number): Promise<Buffer> {
    const out = await this.readOrEnd(n);
    if (!out) throw new DebError('DEB_INVALID', 'truncated ar archive');
    return Buffer.from(out);
  }

  async skip(n: number): Promise<void> {
    await this.pipeBytes(n, undefined, () => undefined);
  }

  /** Moves exactly n bytes into `sink`, honouring its backpressure. */
  async pipeBytes(n: number, sink: PassThrough | undefined, failed: () => unknown): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.fill())) throw new DebError('DEB_INVALID', 'truncated ar member');
      const failure = failed();
      if (failure) throw failure;
      const take = Math.min(left, this.pending.length);
      const chunk = this.pending.subarray(0, take);
      this.pending = this.pending.subarray(take);
      left -= take;
      if (sink && !sink.write(chunk)) {
        await new Promise<void>((resolve) => { sink.once('drain', resolve); sink.once('close', resolve); });
      }
    }
  }
}

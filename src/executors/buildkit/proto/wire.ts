import { BuildkitError } from '../errors.js';

/**
 * The protobuf wire format, for the few BuildKit messages patchd speaks:
 * varints, length-delimited fields, nested messages. Writers emit fields in
 * the order they are called; callers write them in field-number order (what
 * Go's deterministic marshal produces), so op digests are stable.
 */
export class ProtoWriter {
  private readonly parts: Buffer[] = [];

  private tag(field: number, wireType: 0 | 2): void {
    this.varint((field << 3) | wireType);
  }

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    while (v >= 0x80n) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.parts.push(Buffer.from(bytes));
  }

  /** proto3 omits defaults: 0, false, '' and empty bytes are not written. */
  int(field: number, value: number | bigint | undefined): this {
    if (value === undefined || value === 0 || value === 0n) return this;
    this.tag(field, 0);
    this.varint(value);
    return this;
  }

  bool(field: number, value: boolean | undefined): this {
    return value ? this.int(field, 1) : this;
  }

  string(field: number, value: string | undefined): this {
    if (!value) return this;
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  bytes(field: number, value: Uint8Array | undefined, always = false): this {
    if (!value || (value.length === 0 && !always)) return this;
    this.tag(field, 2);
    this.varint(value.length);
    this.parts.push(Buffer.from(value));
    return this;
  }

  /** A nested message; written even when empty if `always` (a set oneof member must be present). */
  message(field: number, value: ProtoWriter | undefined, always = false): this {
    if (!value) return this;
    return this.bytes(field, value.finish(), always);
  }

  strings(field: number, values: readonly string[] | undefined): this {
    for (const v of values ?? []) this.bytes(field, Buffer.from(v, 'utf8'), true);
    return this;
  }

  /** map<string, V>: entries sorted by key, as Go's deterministic marshal writes them. */
  map<V>(field: number, entries: Readonly<Record<string, V>> | undefined, writeValue: (w: ProtoWriter, value: V) => void): this {
    for (const key of Object.keys(entries ?? {}).sort()) {
      const entry = new ProtoWriter().string(1, key);
      writeValue(entry, entries![key]!);
      this.message(field, entry, true);
    }
    return this;
  }

  stringMap(field: number, entries: Readonly<Record<string, string>> | undefined): this {
    return this.map(field, entries, (w, v) => { w.string(2, v); });
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export type ProtoField = { field: number; wireType: number; int?: bigint; bytes?: Buffer };

/** Reads every field of one message; unknown fields are simply returned too. */
export function readFields(buf: Uint8Array): ProtoField[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: ProtoField[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= b.length) throw new BuildkitError('BUILDKIT_RESPONSE_INVALID', 'truncated protobuf varint');
      const byte = b[pos++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new BuildkitError('BUILDKIT_RESPONSE_INVALID', 'protobuf varint too long');
    }
  };
  while (pos < b.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wireType = key & 7;
    if (wireType === 0) out.push({ field, wireType, int: varint() });
    else if (wireType === 2) {
      const length = Number(varint());
      if (pos + length > b.length) throw new BuildkitError('BUILDKIT_RESPONSE_INVALID', 'truncated protobuf field');
      out.push({ field, wireType, bytes: b.subarray(pos, pos + length) });
      pos += length;
    } else if (wireType === 1) { pos += 8; } else if (wireType === 5) { pos += 4; } else throw new BuildkitError('BUILDKIT_RESPONSE_INVALID', `unsupported protobuf wire type ${wireType}`);
  }
  return out;
}

/** Field accessors over readFields' output. */
export class ProtoReader {
  private readonly fields: ProtoField[];
  constructor(buf: Uint8Array) { this.fields = readFields(buf); }
  string(field: number): string { const f = this.last(field); return f?.bytes ? f.bytes.toString('utf8') : ''; }
  bytes(field: number): Buffer { return this.last(field)?.bytes ?? Buffer.alloc(0); }
  /** int64/int32 as written (two's complement: -1 stays -1). */
  int(field: number): number { return Number(BigInt.asIntN(64, this.last(field)?.int ?? 0n)); }
  bool(field: number): boolean { return (this.last(field)?.int ?? 0n) !== 0n; }
  messages(field: number): ProtoReader[] { return this.fields.filter((f) => f.field === field && f.bytes).map((f) => new ProtoReader(f.bytes!)); }
  message(field: number): ProtoReader | undefined { const f = this.last(field); return f?.bytes ? new ProtoReader(f.bytes) : undefined; }
  repeatedBytes(field: number): Buffer[] { return this.fields.filter((f) => f.field === field && f.bytes).map((f) => f.bytes!); }
  stringMap(field: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const entry of this.messages(field)) out[entry.string(1)] = entry.string(2);
    return out;
  }
  private last(field: number): ProtoField | undefined {
    for (let i = this.fields.length - 1; i >= 0; i--) if (this.fields[i]!.field === field) return this.fields[i];
    return undefined;
  }
}

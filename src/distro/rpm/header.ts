import { RpmError } from './errors.js';

/**
 * An rpm header as stored in the rpm database (no lead, no 8-byte magic):
 * int32 index count, int32 data length, 16-byte index entries
 * {tag, type, offset, count}, then the data store. Big-endian throughout.
 */
export interface RpmHeader {
  readonly name: string;
  readonly version: string;
  readonly release: string;
  readonly epoch?: number;
  readonly arch?: string;
  readonly sourceRpm?: string;
}

const Tag = { name: 1000, version: 1001, release: 1002, epoch: 1003, arch: 1022, sourceRpm: 1044 } as const;
const TypeInt32 = 4;
const TypeString = 6;
const TypeI18n = 9;

export function parseRpmHeader(blob: Buffer): RpmHeader {
  if (blob.length < 8) throw new RpmError('RPMDB_INVALID', 'rpm header shorter than its preamble');
  const indexCount = blob.readUInt32BE(0);
  const dataLength = blob.readUInt32BE(4);
  const dataStart = 8 + indexCount * 16;
  if (indexCount > 0xffff || dataStart + dataLength > blob.length) throw new RpmError('RPMDB_INVALID', 'rpm header index or data runs past the blob');
  const values = new Map<number, string | number>();
  for (let i = 0; i < indexCount; i++) {
    const at = 8 + i * 16;
    const tag = blob.readUInt32BE(at);
    const type = blob.readUInt32BE(at + 4);
    const offset = blob.readUInt32BE(at + 8);
    if (offset >= dataLength) continue;
    const start = dataStart + offset;
    if (type === TypeString || type === TypeI18n) {
      const end = blob.indexOf(0, start);
      if (end < 0 || end > dataStart + dataLength) continue;
      values.set(tag, blob.toString('utf8', start, end));
    } else if (type === TypeInt32 && start + 4 <= dataStart + dataLength) {
      values.set(tag, blob.readUInt32BE(start));
    }
  }
  const name = values.get(Tag.name);
  const version = values.get(Tag.version);
  const release = values.get(Tag.release);
  if (typeof name !== 'string' || typeof version !== 'string' || typeof release !== 'string' || !name || !version || !release) throw new RpmError('RPMDB_INVALID', 'rpm header lacks name, version or release');
  if (!/^[^\s/]+$/.test(name) || /\s/.test(version + release)) throw new RpmError('RPMDB_INVALID', `rpm header has a malformed name or version (${JSON.stringify(name)} ${JSON.stringify(version)}-${JSON.stringify(release)})`);
  const epoch = values.get(Tag.epoch);
  const arch = values.get(Tag.arch);
  const sourceRpm = values.get(Tag.sourceRpm);
  return {
    name, version, release,
    ...(typeof epoch === 'number' ? { epoch } : {}),
    ...(typeof arch === 'string' ? { arch } : {}),
    ...(typeof sourceRpm === 'string' ? { sourceRpm } : {}),
  };
}

/** The binary's own epoch:version-release (`1:3.0.7-27.el9`); an epoch of 0 is the same as none and is left out. */
export function evrOf(h: RpmHeader): string {
  return `${h.epoch ? `${h.epoch}:` : ''}${h.version}-${h.release}`;
}

/**
 * The source package a binary was built from, as advisories name it. The
 * source rpm's file name has no epoch, but the source package has the same
 * one as every binary built from it (rpmbuild gives them all the spec's
 * Epoch), so the binary's is carried over: `openssl-libs-1:3.0.7-27.el9`
 * from `openssl-3.0.7-27.el9.src.rpm` is source `openssl` `1:3.0.7-27.el9`.
 */
export function sourcePackageOf(h: RpmHeader): { name: string; version: string } | undefined {
  const source = h.sourceRpm ? splitSourceRpm(h.sourceRpm) : undefined;
  if (!source) return undefined;
  return { name: source.name, version: h.epoch ? `${h.epoch}:${source.version}` : source.version };
}

/** `openssl-3.0.7-27.el9.src.rpm` → name `openssl`, version-release `3.0.7-27.el9` (file names carry no epoch). */
export function splitSourceRpm(file: string): { name: string; version: string } | undefined {
  const m = /^(.+)-([^-]+)-([^-]+)\.(?:no)?src\.rpm$/.exec(file);
  return m ? { name: m[1]!, version: `${m[2]}-${m[3]}` } : undefined;
}

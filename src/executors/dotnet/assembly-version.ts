/**
 * The two versions deps.json records for each assembly, read from the PE file
 * as the SDK reads them: `assemblyVersion` from the CLI metadata's Assembly
 * table (ECMA-335 II.22.2), `fileVersion` from the VS_FIXEDFILEINFO of the
 * RT_VERSION resource (what FileVersionInfo's File*Part give).
 */
export interface AssemblyVersions {
  readonly assemblyVersion: string;
  readonly fileVersion?: string;
}

/** The versions of a managed assembly; undefined when `bytes` is not one (not PE, no CLI header, no Assembly row). */
export function readAssemblyVersions(bytes: Buffer): AssemblyVersions | undefined {
  try {
    const pe = readPe(bytes);
    if (!pe) return undefined;
    const assemblyVersion = readAssemblyTable(bytes, pe);
    if (!assemblyVersion) return undefined;
    const fileVersion = readFileVersion(bytes, pe);
    return { assemblyVersion, ...(fileVersion ? { fileVersion } : {}) };
  } catch (error) {
    // A truncated or lying file reads past its end: not an assembly.
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}

interface Section { readonly va: number; readonly size: number; readonly raw: number; readonly rawSize: number }
interface Pe { readonly sections: readonly Section[]; readonly directories: readonly { rva: number; size: number }[] }

function readPe(b: Buffer): Pe | undefined {
  if (b.length < 64 || b.readUInt16LE(0) !== 0x5a4d) return undefined; // MZ
  const pe = b.readUInt32LE(0x3c);
  if (b.readUInt32LE(pe) !== 0x00004550) return undefined; // PE\0\0
  const sectionCount = b.readUInt16LE(pe + 6);
  const optionalSize = b.readUInt16LE(pe + 20);
  const optional = pe + 24;
  const magic = b.readUInt16LE(optional);
  const dirBase = magic === 0x10b ? optional + 96 : magic === 0x20b ? optional + 112 : -1;
  if (dirBase < 0) return undefined;
  const dirCount = Math.min(b.readUInt32LE(dirBase - 4), 16);
  const directories = Array.from({ length: dirCount }, (_, i) => ({ rva: b.readUInt32LE(dirBase + i * 8), size: b.readUInt32LE(dirBase + i * 8 + 4) }));
  const sections: Section[] = [];
  for (let i = 0, at = optional + optionalSize; i < sectionCount; i++, at += 40) {
    sections.push({ size: b.readUInt32LE(at + 8), va: b.readUInt32LE(at + 12), rawSize: b.readUInt32LE(at + 16), raw: b.readUInt32LE(at + 20) });
  }
  return { sections, directories };
}

function offsetOf(pe: Pe, rva: number): number {
  for (const s of pe.sections) {
    if (rva >= s.va && rva < s.va + Math.max(s.size, s.rawSize)) return rva - s.va + s.raw;
  }
  throw new RangeError(`RVA ${rva} is in no section`);
}

// Tables before Assembly (0x20), each row as a list of column kinds (ECMA-335 II.22).
type Column = number | 'str' | 'guid' | 'blob' | { table: number } | { coded: readonly number[]; bits: number };
const typeDefOrRef = { coded: [0x02, 0x01, 0x1b], bits: 2 };
const hasConstant = { coded: [0x04, 0x08, 0x17], bits: 2 };
const hasCustomAttribute = { coded: [0x06, 0x04, 0x01, 0x02, 0x08, 0x09, 0x0a, 0x00, 0x0e, 0x17, 0x14, 0x11, 0x1a, 0x1b, 0x20, 0x23, 0x26, 0x27, 0x28, 0x2a, 0x2c, 0x2b], bits: 5 };
const hasFieldMarshal = { coded: [0x04, 0x08], bits: 1 };
const hasDeclSecurity = { coded: [0x02, 0x06, 0x20], bits: 2 };
const memberRefParent = { coded: [0x02, 0x01, 0x1a, 0x06, 0x1b], bits: 3 };
const hasSemantics = { coded: [0x14, 0x17], bits: 1 };
const methodDefOrRef = { coded: [0x06, 0x0a], bits: 1 };
const memberForwarded = { coded: [0x04, 0x06], bits: 1 };
const customAttributeType = { coded: [0x06, 0x0a], bits: 3 };
const resolutionScope = { coded: [0x00, 0x1a, 0x23, 0x01], bits: 2 };
const schema: readonly (readonly Column[])[] = [
  /* 00 Module */ [2, 'str', 'guid', 'guid', 'guid'],
  /* 01 TypeRef */ [resolutionScope, 'str', 'str'],
  /* 02 TypeDef */ [4, 'str', 'str', typeDefOrRef, { table: 0x04 }, { table: 0x06 }],
  /* 03 FieldPtr */ [{ table: 0x04 }],
  /* 04 Field */ [2, 'str', 'blob'],
  /* 05 MethodPtr */ [{ table: 0x06 }],
  /* 06 MethodDef */ [4, 2, 2, 'str', 'blob', { table: 0x08 }],
  /* 07 ParamPtr */ [{ table: 0x08 }],
  /* 08 Param */ [2, 2, 'str'],
  /* 09 InterfaceImpl */ [{ table: 0x02 }, typeDefOrRef],
  /* 0A MemberRef */ [memberRefParent, 'str', 'blob'],
  /* 0B Constant */ [2, hasConstant, 'blob'],
  /* 0C CustomAttribute */ [hasCustomAttribute, customAttributeType, 'blob'],
  /* 0D FieldMarshal */ [hasFieldMarshal, 'blob'],
  /* 0E DeclSecurity */ [2, hasDeclSecurity, 'blob'],
  /* 0F ClassLayout */ [2, 4, { table: 0x02 }],
  /* 10 FieldLayout */ [4, { table: 0x04 }],
  /* 11 StandAloneSig */ ['blob'],
  /* 12 EventMap */ [{ table: 0x02 }, { table: 0x14 }],
  /* 13 EventPtr */ [{ table: 0x14 }],
  /* 14 Event */ [2, 'str', typeDefOrRef],
  /* 15 PropertyMap */ [{ table: 0x02 }, { table: 0x17 }],
  /* 16 PropertyPtr */ [{ table: 0x17 }],
  /* 17 Property */ [2, 'str', 'blob'],
  /* 18 MethodSemantics */ [2, { table: 0x06 }, hasSemantics],
  /* 19 MethodImpl */ [{ table: 0x02 }, methodDefOrRef, methodDefOrRef],
  /* 1A ModuleRef */ ['str'],
  /* 1B TypeSpec */ ['blob'],
  /* 1C ImplMap */ [2, memberForwarded, 'str', { table: 0x1a }],
  /* 1D FieldRVA */ [4, { table: 0x04 }],
  /* 1E EncLog */ [4, 4],
  /* 1F EncMap */ [4],
];

function readAssemblyTable(b: Buffer, pe: Pe): string | undefined {
  const cli = pe.directories[14];
  if (!cli || cli.rva === 0) return undefined;
  const header = offsetOf(pe, cli.rva);
  const metadata = offsetOf(pe, b.readUInt32LE(header + 8));
  if (b.readUInt32LE(metadata) !== 0x424a5342) return undefined; // BSJB
  const versionLength = b.readUInt32LE(metadata + 12);
  let at = metadata + 16 + versionLength;
  const streamCount = b.readUInt16LE(at + 2);
  at += 4;
  let tables: number | undefined;
  for (let i = 0; i < streamCount; i++) {
    const offset = b.readUInt32LE(at);
    const end = b.indexOf(0, at + 8);
    const name = b.toString('latin1', at + 8, end);
    at = at + 8 + ((end - (at + 8) + 4) & ~3);
    if (name === '#~' || name === '#-') tables = metadata + offset;
  }
  if (tables === undefined) return undefined;
  const heapSizes = b[tables + 6]!;
  const valid = b.readBigUInt64LE(tables + 8);
  const rows: number[] = [];
  let p = tables + 24;
  for (let t = 0; t < 64; t++) {
    if ((valid >> BigInt(t)) & 1n) { rows[t] = b.readUInt32LE(p); p += 4; } else rows[t] = 0;
  }
  if (heapSizes & 0x40) p += 4; // extra data (EnC)
  if (!rows[0x20]) return undefined;
  const size = (c: Column): number => {
    if (typeof c === 'number') return c;
    if (c === 'str') return heapSizes & 0x01 ? 4 : 2;
    if (c === 'guid') return heapSizes & 0x02 ? 4 : 2;
    if (c === 'blob') return heapSizes & 0x04 ? 4 : 2;
    if ('table' in c) return rows[c.table]! < 0x10000 ? 2 : 4;
    return Math.max(...c.coded.map((t) => rows[t]!)) < 1 << (16 - c.bits) ? 2 : 4;
  };
  for (let t = 0; t < 0x20; t++) p += rows[t]! * schema[t]!.reduce<number>((n, c) => n + size(c), 0);
  // Assembly: HashAlgId (4), then Major, Minor, Build, Revision (2 each).
  return [0, 1, 2, 3].map((i) => b.readUInt16LE(p + 4 + i * 2)).join('.');
}

function readFileVersion(b: Buffer, pe: Pe): string | undefined {
  const rsrc = pe.directories[2];
  if (!rsrc || rsrc.rva === 0) return undefined;
  const base = offsetOf(pe, rsrc.rva);
  // Resource directory: type → name → language; the first name and language of RT_VERSION (16).
  const entries = (dir: number) => {
    const count = b.readUInt16LE(dir + 12) + b.readUInt16LE(dir + 14);
    return Array.from({ length: count }, (_, i) => ({ id: b.readUInt32LE(dir + 16 + i * 8), target: b.readUInt32LE(dir + 20 + i * 8) }));
  };
  const version = entries(base).find((e) => e.id === 16);
  if (!version || !(version.target & 0x80000000)) return undefined;
  let node = version.target;
  for (let level = 0; level < 2 && node & 0x80000000; level++) {
    const first = entries(base + (node & 0x7fffffff))[0];
    if (!first) return undefined;
    node = first.target;
  }
  if (node & 0x80000000) return undefined;
  const data = offsetOf(pe, b.readUInt32LE(base + node));
  // VS_VERSIONINFO: wLength, wValueLength, wType, "VS_VERSION_INFO\0" (UTF-16), padding to 4, VS_FIXEDFILEINFO.
  if (b.toString('utf16le', data + 6, data + 6 + 30) !== 'VS_VERSION_INFO') return undefined;
  const fixed = data + ((6 + 32 + 3) & ~3);
  if (b.readUInt32LE(fixed) !== 0xfeef04bd) return undefined;
  const ms = b.readUInt32LE(fixed + 8);
  const ls = b.readUInt32LE(fixed + 12);
  return `${ms >>> 16}.${ms & 0xffff}.${ls >>> 16}.${ls & 0xffff}`;
}

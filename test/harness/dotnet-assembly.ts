import { createHash } from 'node:crypto';

// A synthetic stand-in for a .NET assembly: no .NET SDK can run here, so the
// fixture DLLs are not compiled C#. This writes the smallest PE32 file that
// has what deps.json's versions come from, laid out by hand from the PE/COFF
// specification and ECMA-335 II.24: a CLI header, metadata with a #~ stream
// (Module, TypeRef, TypeDef and Assembly tables, so the reader has to step
// over tables of other row sizes), #Strings, #GUID, #Blob, and an RT_VERSION
// resource with a VS_FIXEDFILEINFO. There is no IL in it: it cannot run.

export interface SyntheticAssembly {
  readonly name: string;
  /** AssemblyVersion, four parts: '13.0.0.0'. */
  readonly assemblyVersion: string;
  /** Win32 file version, four parts: '13.0.1.25517'. */
  readonly fileVersion?: string;
  /** Any text kept in #Strings, so tests can tell copies apart (e.g. which lib/<tfm> it came from). */
  readonly marker?: string;
  /** TypeRef and TypeDef rows (content zero): tables the reader has to skip. */
  readonly typeRefs?: number;
  readonly typeDefs?: number;
}

const align = (n: number, to: number) => Math.ceil(n / to) * to;
const parts = (v: string) => {
  const p = v.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffff)) throw new Error(`four 16-bit parts expected: ${v}`);
  return p as [number, number, number, number];
};

export function syntheticAssembly(spec: SyntheticAssembly): Buffer {
  const text = metadataSection(spec);
  const rsrcVa = 0x2000 + align(text.length, 0x2000);
  const rsrc = spec.fileVersion ? resourceSection(spec.fileVersion, rsrcVa) : Buffer.alloc(0);
  const textRaw = 0x200;
  const rsrcRaw = textRaw + align(text.length, 0x200);
  const file = Buffer.alloc(rsrcRaw + align(rsrc.length, 0x200));

  // DOS header: MZ, e_lfanew.
  file.write('MZ', 0, 'latin1');
  file.writeUInt32LE(0x80, 0x3c);
  // PE signature and COFF header.
  file.write('PE\0\0', 0x80, 'latin1');
  const coff = 0x84;
  file.writeUInt16LE(0x14c, coff); // i386
  file.writeUInt16LE(rsrc.length > 0 ? 2 : 1, coff + 2);
  file.writeUInt16LE(224, coff + 16); // SizeOfOptionalHeader
  file.writeUInt16LE(0x2102, coff + 18); // executable, 32-bit, DLL
  // Optional header (PE32).
  const opt = coff + 20;
  file.writeUInt16LE(0x10b, opt);
  file.writeUInt32LE(0x10000000, opt + 28); // ImageBase
  file.writeUInt32LE(0x2000, opt + 32); // SectionAlignment
  file.writeUInt32LE(0x200, opt + 36); // FileAlignment
  file.writeUInt16LE(4, opt + 48);
  file.writeUInt32LE(rsrcVa + 0x2000, opt + 56); // SizeOfImage
  file.writeUInt32LE(0x200, opt + 60); // SizeOfHeaders
  file.writeUInt16LE(3, opt + 68); // console subsystem
  file.writeUInt32LE(16, opt + 92); // NumberOfRvaAndSizes
  const dir = (i: number, rva: number, size: number) => { file.writeUInt32LE(rva, opt + 96 + i * 8); file.writeUInt32LE(size, opt + 100 + i * 8); };
  if (rsrc.length > 0) dir(2, rsrcVa, rsrc.length);
  dir(14, 0x2000, 72);
  // Section table.
  const section = (at: number, name: string, va: number, size: number, raw: number) => {
    file.write(name, at, 'latin1');
    file.writeUInt32LE(size, at + 8);
    file.writeUInt32LE(va, at + 12);
    file.writeUInt32LE(align(size, 0x200), at + 16);
    file.writeUInt32LE(raw, at + 20);
    file.writeUInt32LE(0x60000020, at + 36);
  };
  section(opt + 224, '.text', 0x2000, text.length, textRaw);
  if (rsrc.length > 0) section(opt + 264, '.rsrc', rsrcVa, rsrc.length, rsrcRaw);
  text.copy(file, textRaw);
  rsrc.copy(file, rsrcRaw);
  return file;
}

/** CLI header at RVA 0x2000, the metadata right after it. */
function metadataSection(spec: SyntheticAssembly): Buffer {
  const strings: string[] = [];
  const strIndex = (s: string) => {
    let at = 1;
    for (const t of strings) { if (t === s) return at; at += Buffer.byteLength(t) + 1; }
    strings.push(s);
    return at;
  };
  const moduleName = strIndex(`${spec.name}.dll`);
  const assemblyName = strIndex(spec.name);
  if (spec.marker) strIndex(spec.marker);
  const stringsHeap = Buffer.concat([Buffer.from([0]), ...strings.map((s) => Buffer.from(`${s}\0`, 'utf8'))]);
  const guidHeap = createHash('md5').update(JSON.stringify(spec)).digest();
  const blobHeap = Buffer.alloc(4);

  const typeRefs = spec.typeRefs ?? 3;
  const typeDefs = spec.typeDefs ?? 2;
  const present = [0x00, 0x01, 0x02, 0x20];
  const rows = [1, typeRefs, typeDefs, 1];
  const header = Buffer.alloc(24 + rows.length * 4);
  header.writeUInt8(2, 4);
  header.writeUInt8(0, 6); // HeapSizes: all 2-byte indexes
  header.writeUInt8(1, 7);
  header.writeBigUInt64LE(present.reduce((v, t) => v | (1n << BigInt(t)), 0n), 8);
  rows.forEach((n, i) => header.writeUInt32LE(n, 24 + i * 4));
  const moduleRow = Buffer.alloc(10);
  moduleRow.writeUInt16LE(moduleName, 2);
  moduleRow.writeUInt16LE(1, 4); // Mvid: GUID #1
  // TypeRef: ResolutionScope Name(2) Namespace(2); TypeDef: Flags(4) Name(2) Namespace(2) Extends FieldList(2) MethodList(2).
  // ResolutionScope and Extends are coded indexes with two tag bits: 4 bytes once TypeRef has 2^14 rows or more.
  const scopeWide = typeRefs >= 1 << 14 ? 2 : 0;
  const extendsWide = Math.max(typeRefs, typeDefs) >= 1 << 14 ? 2 : 0;
  const typeRefRows = Buffer.alloc((6 + scopeWide) * typeRefs, 0x01);
  const typeDefRows = Buffer.alloc((14 + extendsWide) * typeDefs, 0x01);
  const [major, minor, build, revision] = parts(spec.assemblyVersion);
  const assemblyRow = Buffer.alloc(22);
  assemblyRow.writeUInt32LE(0x8004, 0); // SHA1
  assemblyRow.writeUInt16LE(major, 4);
  assemblyRow.writeUInt16LE(minor, 6);
  assemblyRow.writeUInt16LE(build, 8);
  assemblyRow.writeUInt16LE(revision, 10);
  assemblyRow.writeUInt16LE(assemblyName, 18);
  const tablesRaw = Buffer.concat([header, moduleRow, typeRefRows, typeDefRows, assemblyRow]);
  const tables = Buffer.concat([tablesRaw, Buffer.alloc(align(tablesRaw.length, 4) - tablesRaw.length)]);
  const stringsPadded = Buffer.concat([stringsHeap, Buffer.alloc(align(stringsHeap.length, 4) - stringsHeap.length)]);

  const version = Buffer.from('v4.0.30319\0\0', 'latin1');
  const streams: [string, Buffer][] = [['#~', tables], ['#Strings', stringsPadded], ['#GUID', guidHeap], ['#Blob', blobHeap]];
  const streamHeaders = streams.map(([name]) => 8 + align(name.length + 1, 4));
  const rootSize = 16 + version.length + 4 + streamHeaders.reduce((a, b) => a + b, 0);
  const root = Buffer.alloc(rootSize);
  root.writeUInt32LE(0x424a5342, 0);
  root.writeUInt16LE(1, 4);
  root.writeUInt16LE(1, 6);
  root.writeUInt32LE(version.length, 12);
  version.copy(root, 16);
  root.writeUInt16LE(streams.length, 16 + version.length + 2);
  let at = 16 + version.length + 4;
  let offset = rootSize;
  streams.forEach(([name, data], i) => {
    root.writeUInt32LE(offset, at);
    root.writeUInt32LE(data.length, at + 4);
    root.write(name, at + 8, 'latin1');
    at += streamHeaders[i]!;
    offset += data.length;
  });
  const metadata = Buffer.concat([root, ...streams.map(([, d]) => d)]);
  const cli = Buffer.alloc(72);
  cli.writeUInt32LE(72, 0);
  cli.writeUInt16LE(2, 4);
  cli.writeUInt16LE(5, 6);
  cli.writeUInt32LE(0x2000 + 72, 8);
  cli.writeUInt32LE(metadata.length, 12);
  cli.writeUInt32LE(1, 16); // ILONLY
  return Buffer.concat([cli, metadata]);
}

/** An RT_VERSION resource (type 16, id 1, neutral language) holding VS_VERSIONINFO with its fixed part only. */
function resourceSection(fileVersion: string, rva: number): Buffer {
  const out = Buffer.alloc(88 + 92);
  const directory = (at: number, id: number, target: number) => {
    out.writeUInt16LE(1, at + 14); // one ID entry
    out.writeUInt32LE(id, at + 16);
    out.writeUInt32LE(target, at + 20);
  };
  directory(0, 16, (0x80000000 | 24) >>> 0);
  directory(24, 1, (0x80000000 | 48) >>> 0);
  directory(48, 0, 72);
  out.writeUInt32LE(rva + 88, 72);
  out.writeUInt32LE(92, 76);
  const info = 88;
  out.writeUInt16LE(92, info);
  out.writeUInt16LE(52, info + 2);
  out.write('VS_VERSION_INFO', info + 6, 'utf16le');
  const fixed = info + 40;
  const [a, b, c, d] = parts(fileVersion);
  out.writeUInt32LE(0xfeef04bd, fixed);
  out.writeUInt32LE(0x00010000, fixed + 4);
  out.writeUInt32LE(((a << 16) | b) >>> 0, fixed + 8);
  out.writeUInt32LE(((c << 16) | d) >>> 0, fixed + 12);
  out.writeUInt32LE(((a << 16) | b) >>> 0, fixed + 16);
  out.writeUInt32LE(((c << 16) | d) >>> 0, fixed + 20);
  out.writeUInt32LE(0x3f, fixed + 24);
  out.writeUInt32LE(4, fixed + 32); // VOS__WINDOWS32
  out.writeUInt32LE(2, fixed + 36); // VFT_DLL
  return out;
}

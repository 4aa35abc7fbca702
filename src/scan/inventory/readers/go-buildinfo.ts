import type { Readable } from 'node:stream';
import type { PackageRecord } from '../types.js';

const magic = Buffer.from('\xff Go buildinf:', 'latin1');
const headerSize = 32;
/** The inline strings follow the header; nothing real comes close to this. */
const maxInfoBytes = 4 * 2 ** 20;
const executableMagics = [Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from('MZ'), Buffer.from([0xcf, 0xfa, 0xed, 0xfe]), Buffer.from([0xce, 0xfa, 0xed, 0xfe])];

export interface GoBuildInfo {
  readonly goVersion: string;
  readonly path: string;
  /** `sum`: the module zip's h1: checksum, present when the module came from the module cache (`go install m@v`, dependencies). */
  readonly main?: { readonly path: string; readonly version: string; readonly sum?: string };
  readonly deps: readonly { readonly path: string; readonly version: string; readonly sum?: string }[];
  readonly settings: ReadonlyMap<string, string>;
}

export type GoBinaryResult = { kind: 'go'; info: GoBuildInfo } | { kind: 'old-go'; reason: string } | { kind: 'none' };

/**
 * Finds the `.go.buildinfo` blob (debug/buildinfo's format: a 32-byte header
 * starting "\xff Go buildinf:", then, since Go 1.18, the version and module
 * info as varint-prefixed strings) while the file streams past. Consumes the
 * whole stream.
 */
export async function readGoBuildInfo(body: Readable): Promise<GoBinaryResult> {
  let first = true;
  let tail = Buffer.alloc(0);
  let found: Buffer | undefined;
  let result: GoBinaryResult = { kind: 'none' };
  let done = false;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (done) continue;
    if (first) {
      first = false;
      if (!executableMagics.some((m) => chunk.subarray(0, m.length).equals(m))) { done = true; continue; }
    }
    if (found) {
      found = Buffer.concat([found, chunk]);
    } else {
      // Searched in place (most executables are not Go: copying every chunk was most of this reader's cost);
      // only a magic split across two chunks needs the previous chunk's last bytes.
      const across = tail.length > 0 ? Buffer.concat([tail, chunk.subarray(0, magic.length - 1)]).indexOf(magic) : -1;
      if (across >= 0) found = Buffer.concat([tail.subarray(across), chunk]);
      else {
        const at = chunk.indexOf(magic);
        if (at < 0) {
          const keep = magic.length - 1;
          tail = Buffer.from(chunk.length >= keep ? chunk.subarray(chunk.length - keep) : Buffer.concat([tail, chunk]).subarray(-keep));
          continue;
        }
        found = chunk.subarray(at);
      }
    }
    const parsed = parseBlob(found);
    if (parsed !== 'incomplete') { result = parsed; done = true; }
    else if (found.length > maxInfoBytes) { result = { kind: 'old-go', reason: 'build info is not readable (truncated)' }; done = true; }
  }
  if (!done && found) {
    const parsed = parseBlob(found);
    if (parsed !== 'incomplete') result = parsed;
  }
  return result;
}

function parseBlob(blob: Buffer): GoBinaryResult | 'incomplete' {
  if (blob.length < headerSize) return 'incomplete';
  const flags = blob[15]!;
  if ((flags & 0x2) === 0) return { kind: 'old-go', reason: 'built before Go 1.18: build info is stored by pointer and not read' };
  let offset = headerSize;
  const version = readVarString(blob, offset);
  if (!version) return 'incomplete';
  offset = version.next;
  const mod = readVarString(blob, offset);
  if (!mod) return 'incomplete';
  let modinfo = mod.value;
  // The module info is wrapped in 16-byte sentinels so the linker can find it.
  if (modinfo.length >= 33 && modinfo[modinfo.length - 17] === '\n') modinfo = modinfo.slice(16, -16);
  return { kind: 'go', info: parseModInfo(version.value, modinfo) };
}

function readVarString(buf: Buffer, offset: number): { value: string; next: number } | undefined {
  let length = 0;
  let shift = 0;
  let i = offset;
  for (;;) {
    if (i >= buf.length || shift > 35) return undefined;
    const b = buf[i++]!;
    length += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  if (i + length > buf.length) return undefined;
  return { value: buf.toString('latin1', i, i + length), next: i + length };
}

/** runtime/debug.BuildInfo's text form: path, mod, dep and `=>` (replacement) lines, then build settings. */
export function parseModInfo(goVersion: string, text: string): GoBuildInfo {
  let path = '';
  let main: { path: string; version: string; sum?: string } | undefined;
  const deps: { path: string; version: string; sum?: string }[] = [];
  const withSum = (path: string, version: string, sum: string | undefined) => ({ path, version, ...(sum ? { sum } : {}) });
  const settings = new Map<string, string>();
  for (const line of text.split('\n')) {
    const parts = line.split('\t');
    switch (parts[0]) {
      case 'path': path = parts[1] ?? ''; break;
      case 'mod': main = withSum(parts[1] ?? '', parts[2] ?? '', parts[3]); break;
      case 'dep': deps.push(withSum(parts[1] ?? '', parts[2] ?? '', parts[3])); break;
      case '=>': {
        // The replacement applies to the line before it; its version is what was built.
        const last = deps[deps.length - 1];
        if (last && parts[2]) deps[deps.length - 1] = withSum(last.path, parts[2], parts[3]);
        break;
      }
      case 'build': {
        const kv = parts.slice(1).join('\t');
        const eq = kv.indexOf('=');
        if (eq > 0) settings.set(kv.slice(0, eq), kv.slice(eq + 1));
        break;
      }
    }
  }
  return { goVersion, path, ...(main ? { main } : {}), deps, settings };
}

/**
 * One record per module dependency, the main module when the binary names a
 * version of it (`go install m@v` does; a plain `go build` writes `(devel)`),
 * and the standard library as `stdlib` (what advisories for the Go toolchain name).
 */
export function goPackages(info: GoBuildInfo, path: string): PackageRecord[] {
  const revision = info.settings.get('vcs.revision');
  const goBinary = {
    mainModule: info.main?.path ?? info.path,
    goVersion: info.goVersion,
    ...(revision ? { vcsRevision: revision } : {}),
    ...(info.settings.has('vcs.modified') ? { vcsModified: info.settings.get('vcs.modified') === 'true' } : {}),
    ...(info.main?.version ? { mainVersion: info.main.version } : {}),
    ...(info.main?.sum ? { mainSum: info.main.sum } : {}),
  };
  const base = { ecosystem: 'go', class: 'library', path, location: path, goBinary, goOrigin: 'binary' } as const;
  const out: PackageRecord[] = info.deps
    .filter((d) => d.path && d.version)
    .map((d) => ({ ...base, name: d.path, version: d.version }));
  if (info.main?.path && info.main.version && info.main.version !== '(devel)') out.unshift({ ...base, name: info.main.path, version: info.main.version, goMainModule: true });
  const stdlib = /^go(\d+\.\d+(?:\.\d+)?)/.exec(info.goVersion);
  if (stdlib) out.push({ ...base, name: 'stdlib', version: `v${stdlib[1]}` });
  return out;
}

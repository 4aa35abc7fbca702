import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { readAllBytes } from '../../lib/streams.js';
import { normalisePythonName } from '../../scan/inventory/readers/python.js';
import { openZipEntry, readZipDirectory, type ZipEntry } from '../../lib/zip.js';
import { comparePep440 } from '../../versions/pep440.js';
import { PythonError } from './errors.js';
import { parseRecord, type RecordRow } from './record.js';

/** A downloaded wheel, opened through its zip central directory; entries are streamed, never the whole archive buffered. */
export interface Wheel {
  readonly filename: string;
  /** `name-version.dist-info` at the archive root. */
  readonly distInfo: string;
  /** `name-version.data` (purelib, platlib, scripts, headers, data), which may be absent. */
  readonly dataDir: string;
  readonly rootIsPurelib: boolean;
  readonly wheelVersion: string;
  /** Regular files of the archive (directories left out). */
  readonly files: readonly ZipEntry[];
  /** The wheel's own RECORD: each file's expected hash. */
  readonly record: ReadonlyMap<string, RecordRow>;
  readonly metadata: { readonly name: string; readonly version: string; readonly requiresPython?: string };
  readonly entryPoints: EntryPoints;
  open(entry: ZipEntry): Promise<Readable>;
  close(): Promise<void>;
}

export interface EntryPoints {
  readonly console: readonly ScriptEntryPoint[];
  readonly gui: readonly ScriptEntryPoint[];
}

export interface ScriptEntryPoint {
  readonly name: string;
  readonly module: string;
  /** Attribute path inside the module (`main`, `cli.run`). */
  readonly attr: string;
}

const smallFileLimit = 4 * 2 ** 20;

export async function openWheel(path: string, filename: string, expected: { name: string; version: string }): Promise<Wheel> {
  let handle: FileHandle | undefined = await open(path, 'r');
  try {
    let entries: ZipEntry[];
    try { entries = await readZipDirectory(handle); } catch (error) { throw new PythonError('WHEEL_INVALID', `${filename}: ${(error as Error).message}`, { cause: error }); }
    const files = entries.filter((e) => !e.name.endsWith('/'));
    const seen = new Set<string>();
    for (const e of files) {
      if (!safeEntryName(e.name)) throw new PythonError('WHEEL_INVALID', `${filename}: entry ${JSON.stringify(e.name)} is not a relative path inside the wheel`);
      if (seen.has(e.name)) throw new PythonError('WHEEL_INVALID', `${filename}: entry ${e.name} appears twice`);
      seen.add(e.name);
    }
    // pip's wheel_dist_info_dir: exactly one top-level .dist-info, named for the project.
    const infoDirs = [...new Set(files.map((e) => e.name.split('/')[0]!).filter((d) => d.endsWith('.dist-info')))];
    if (infoDirs.length !== 1) throw new PythonError('WHEEL_INVALID', `${filename}: ${infoDirs.length} .dist-info directories (${infoDirs.join(', ') || 'none'}), not one`);
    const distInfo = infoDirs[0]!;
    if (!normalisePythonName(distInfo.slice(0, -'.dist-info'.length)).startsWith(normalisePythonName(expected.name))) {
      throw new PythonError('WHEEL_INVALID', `${filename}: .dist-info directory ${distInfo} does not start with ${expected.name}`);
    }
    const h = handle;
    const byName = new Map(files.map((e) => [e.name, e]));
    const readSmall = async (name: string): Promise<Buffer | undefined> => {
      const entry = byName.get(name);
      if (!entry) return undefined;
      if (entry.size > smallFileLimit) throw new PythonError('WHEEL_INVALID', `${filename}: ${name} is larger than ${smallFileLimit} bytes`);
      try { return await readAllBytes(await openZipEntry(h, entry)); } catch (error) { throw new PythonError('WHEEL_INVALID', `${filename}: ${name}: ${(error as Error).message}`, { cause: error }); }
    };

    const wheelText = (await readSmall(`${distInfo}/WHEEL`))?.toString('utf8');
    if (wheelText === undefined) throw new PythonError('WHEEL_INVALID', `${filename}: no ${distInfo}/WHEEL`);
    const wheelFields = headers(wheelText);
    const wheelVersion = wheelFields.get('wheel-version')?.[0] ?? '';
    // pip refuses a wheel of a major version it does not know and accepts newer minor versions.
    if (!/^1\.\d+$/.test(wheelVersion)) throw new PythonError('WHEEL_INVALID', `${filename}: Wheel-Version ${JSON.stringify(wheelVersion)} is not 1.x`);
    const purelib = wheelFields.get('root-is-purelib')?.[0]?.toLowerCase();
    if (purelib !== 'true' && purelib !== 'false') throw new PythonError('WHEEL_INVALID', `${filename}: Root-Is-Purelib is ${JSON.stringify(purelib ?? null)}`);

    const metadataText = (await readSmall(`${distInfo}/METADATA`))?.toString('utf8');
    if (metadataText === undefined) throw new PythonError('WHEEL_INVALID', `${filename}: no ${distInfo}/METADATA`);
    const meta = headers(metadataText);
    const name = meta.get('name')?.[0];
    const version = meta.get('version')?.[0];
    if (!name || normalisePythonName(name) !== normalisePythonName(expected.name)) throw new PythonError('WHEEL_INVALID', `${filename}: METADATA names ${JSON.stringify(name ?? null)}, not ${expected.name}`);
    if (!version || !samePep440(version, expected.version)) throw new PythonError('WHEEL_INVALID', `${filename}: METADATA version ${JSON.stringify(version ?? null)}, not ${expected.version}`);
    const requiresPython = meta.get('requires-python')?.[0];

    const recordText = (await readSmall(`${distInfo}/RECORD`))?.toString('utf8');
    if (recordText === undefined) throw new PythonError('WHEEL_INVALID', `${filename}: no ${distInfo}/RECORD`);
    const record = new Map(parseRecord(recordText).map((r) => [r.path, r]));

    const entryPointsText = (await readSmall(`${distInfo}/entry_points.txt`))?.toString('utf8');
    const wheel: Wheel = {
      filename, distInfo, dataDir: `${distInfo.slice(0, -'.dist-info'.length)}.data`, rootIsPurelib: purelib === 'true', wheelVersion,
      files, record, metadata: { name, version, ...(requiresPython ? { requiresPython } : {}) },
      entryPoints: entryPointsText === undefined ? { console: [], gui: [] } : parseEntryPoints(entryPointsText, filename),
      open: async (entry) => {
        try { return await openZipEntry(h, entry); } catch (error) { throw new PythonError('WHEEL_INVALID', `${filename}: ${entry.name}: ${(error as Error).message}`, { cause: error }); }
      },
      close: async () => { await h.close(); },
    };
    handle = undefined;
    return wheel;
  } finally {
    await handle?.close();
  }
}

function safeEntryName(name: string): boolean {
  if (name === '' || name.startsWith('/') || name.includes('\\') || name.includes('\0')) return false;
  return name.split('/').every((part) => part !== '..' && part !== '.' && part !== '');
}

/** RFC 822-style headers up to the first blank line (WHEEL, METADATA); keys lower-cased, repeated keys kept in order. */
function headers(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') break;
    const m = /^([A-Za-z0-9-]+):\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    out.set(key, [...(out.get(key) ?? []), m[2]!]);
  }
  return out;
}

/** entry_points.txt (an INI file): the console_scripts and gui_scripts sections pip turns into wrappers. */
export function parseEntryPoints(text: string, filename = 'entry_points.txt'): EntryPoints {
  const sections: Record<string, ScriptEntryPoint[]> = { console_scripts: [], gui_scripts: [] };
  let current: ScriptEntryPoint[] | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) { current = sections[section[1]!.trim()]; continue; }
    if (!current) continue;
    const m = /^([^=]+?)\s*=\s*([A-Za-z_][\w.]*)\s*(?::\s*([A-Za-z_][\w.]*))?\s*(?:\[[^\]]*\])?\s*$/.exec(line);
    if (!m || !m[3]) throw new PythonError('WHEEL_INVALID', `${filename}: script entry point ${JSON.stringify(line)} is not name = module:attr`);
    const name = m[1]!;
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name)) throw new PythonError('WHEEL_INVALID', `${filename}: script name ${JSON.stringify(name)} is not a plain file name`);
    current.push({ name, module: m[2]!, attr: m[3] });
  }
  return { console: sections['console_scripts']!, gui: sections['gui_scripts']! };
}

function samePep440(a: string, b: string): boolean {
  try { return comparePep440(a, b) === 0; } catch { return a === b; }
}

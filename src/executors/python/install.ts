import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { FsEntry, ImageFilesystem } from '../../image/filesystem.js';
import type { EntryMeta, LayerBuilder } from '../../image/layer-builder.js';
import { readAllBytes } from '../../lib/streams.js';
import type { ZipEntry } from '../../lib/zip.js';
import { PythonError } from './errors.js';
import type { PythonPlace } from './interpreter.js';
import { formatRecord, isWithin, parseRecord, recordHash, recordPathOf, resolveRecordPath, sha256Record, type RecordRow } from './record.js';
import { fixScriptShebang, scriptsToGenerate, scriptWrapper, shebangOf } from './scripts.js';
import type { Wheel } from './wheel.js';

/** What an install did to the layer. */
export interface WheelInstallResult {
  readonly written: number;
  readonly removed: number;
  readonly scripts: readonly string[];
  /** Entry points left without a wrapper: neither an old script nor the interpreter says which shebang to give them. */
  readonly scriptsSkipped: readonly string[];
}

/** What the image has of the install being replaced. */
export interface OldInstall {
  /** The .dist-info (or .egg-info) directory, root-relative. */
  readonly infoDir: string;
  /** Files the old install owns that are in the image now, root-relative (its RECORD, confined to the scheme). */
  readonly files: readonly string[];
  readonly requested: boolean;
  /** Scripts it installed (name → path), with the shebang and entry of the first that has one. */
  readonly scripts: ReadonlyMap<string, string>;
  readonly scriptShebang?: { readonly shebang: string; readonly executable: string; readonly entry: FsEntry };
  readonly owner: { readonly uid: number; readonly gid: number };
}

const inMemoryFileLimit = 1 << 20;

/** The install scheme of a place: where each of a wheel's `.data/<key>` directories goes, and what an install there may touch. */
export interface InstallScheme {
  readonly purelib: string;
  readonly platlib: string;
  readonly scripts: string;
  readonly headers: string;
  readonly data: string;
  /** An install (and its RECORD) may only name paths under these. */
  readonly roots: readonly string[];
}

export function installScheme(place: PythonPlace, projectName: string, oldScriptsDir?: string): InstallScheme {
  const s = place.sitePackages;
  const short = `${place.version.major}.${place.version.minor}`;
  const base = place.prefix;
  if (base === undefined) {
    // pip --target: everything, scripts included, lands under the target directory.
    return { purelib: s, platlib: s, scripts: oldScriptsDir ?? `${s}/bin`, headers: `${s}/include/${projectName}`, data: s, roots: [s] };
  }
  const headers = place.venv ? posix.join(base, 'include/site', `python${short}`, projectName) : posix.join(base, 'include', `python${short}`, projectName);
  return { purelib: s, platlib: s, scripts: oldScriptsDir ?? posix.join(base, 'bin'), headers, data: base, roots: base === '' ? [''] : [base, s] };
}

/**
 * Reads the old install's file list (RECORD; `installed-files.txt` for an
 * egg-info), every path resolved inside the image and confined to the
 * place's install scheme: a path that climbs out of it is refused, never
 * deleted.
 */
export async function readOldInstall(fs: ImageFilesystem, place: PythonPlace, metadataPath: string): Promise<OldInstall> {
  const infoDir = resolveInImage(fs, /\.(dist|egg)-info$/.test(metadataPath) ? metadataPath : posix.dirname(metadataPath));
  if (posix.dirname(infoDir) !== place.sitePackages) {
    throw new PythonError('INSTALL_UNSUPPORTED', `${infoDir} is not directly in ${place.sitePackages}: only top-level installs are replaced`);
  }
  const info = fs.lstat(infoDir);
  if (info?.type !== 'directory') throw new PythonError('INSTALL_UNSUPPORTED', `${infoDir} is not a directory: without a file list the old install cannot be removed exactly`);
  let listed: string[];
  const scheme = installScheme(place, '');
  const confine = (raw: string, base: string, file: string): string => {
    const resolved = resolveRecordPath(base, raw);
    if (resolved === undefined) throw new PythonError('PATH_ESCAPE', `${file} names ${JSON.stringify(raw)}, which leaves the image root: refusing to touch it`);
    const real = resolveInImage(fs, resolved);
    if (!scheme.roots.some((r) => isWithin(resolved, r) && isWithin(real, r))) {
      throw new PythonError('PATH_ESCAPE', `${file} names ${JSON.stringify(raw)} (/${real}), outside the install scheme of ${place.sitePackages} (${scheme.roots.map((r) => `/${r}`).join(', ')}): refusing to touch it`);
    }
    return real;
  };
  if (infoDir.endsWith('.dist-info')) {
    const file = `${infoDir}/RECORD`;
    const text = fs.stat(file)?.type === 'file' ? (await fs.readFile(file))?.toString('utf8') : undefined;
    if (text === undefined) throw new PythonError('INSTALL_UNSUPPORTED', `${infoDir} has no RECORD: cannot tell which files the old install owns`);
    listed = parseRecord(text).map((r) => confine(r.path, place.sitePackages, `/${file}`));
  } else {
    const file = `${infoDir}/installed-files.txt`;
    const text = fs.stat(file)?.type === 'file' ? (await fs.readFile(file))?.toString('utf8') : undefined;
    if (text === undefined) throw new PythonError('INSTALL_UNSUPPORTED', `${infoDir} has no installed-files.txt: a distutils/egg install cannot be removed exactly (pip refuses it too)`);
    listed = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).map((p) => confine(p, infoDir, `/${file}`));
  }
  const files = [...new Set(listed)].filter((p) => { const t = fs.lstat(p)?.type; return t !== undefined && t !== 'directory'; });

  // Scripts: what the old install put outside site-packages into a bin directory.
  const scripts = new Map<string, string>();
  for (const p of files) if (!isWithin(p, place.sitePackages) && posix.basename(posix.dirname(p)) === 'bin') scripts.set(posix.basename(p), p);
  let scriptShebang: OldInstall['scriptShebang'];
  for (const p of scripts.values()) {
    const entry = fs.lstat(p);
    if (entry?.type !== 'file' || entry.size > inMemoryFileLimit) continue;
    const bytes = await fs.readFile(p);
    const found = bytes && shebangOf(bytes);
    if (found) { scriptShebang = { ...found, entry }; break; }
  }
  return {
    infoDir, files, requested: fs.lstat(`${infoDir}/REQUESTED`) !== undefined, scripts,
    ...(scriptShebang ? { scriptShebang } : {}),
    owner: { uid: info.uid, gid: info.gid },
  };
}

/** A root-relative path with its directories' symlinks resolved inside the image (the last component kept as is). */
function resolveInImage(fs: ImageFilesystem, path: string): string {
  const parent = fs.realpath(posix.dirname(path) === '.' ? '' : posix.dirname(path));
  if (parent === undefined) return path;
  return parent === '' ? posix.basename(path) : `${parent}/${posix.basename(path)}`;
}

interface NewFile {
  readonly path: string;
  readonly mode: number;
  /** Wheel content (streamed, re-inflated at commit) or generated bytes. */
  readonly source: { readonly entry: ZipEntry; readonly fixShebang?: string } | { readonly bytes: Buffer };
  readonly expected?: RecordRow;
}

/**
 * Installs an opened wheel over the old install the way pip does: the old
 * RECORD's files that the new version does not ship are whited out (their
 * bytecode too, and directories left empty), the wheel's files are written
 * by scheme, script wrappers are regenerated where the old install had its
 * scripts, and the new dist-info gets INSTALLER, REQUESTED (if the old one
 * had it) and a RECORD covering every file. Every hash is checked against
 * the wheel's RECORD before anything is staged, so a bad wheel leaves the
 * layer untouched.
 */
export async function installWheel(args: {
  fs: ImageFilesystem;
  builder: LayerBuilder;
  place: PythonPlace;
  old: OldInstall;
  wheel: Wheel;
}): Promise<WheelInstallResult> {
  const { fs, builder, place, old, wheel } = args;
  const oldScriptDirs = [...new Set([...old.scripts.values()].map((p) => posix.dirname(p)))];
  const scheme = installScheme(place, wheel.metadata.name, oldScriptDirs.length === 1 ? oldScriptDirs[0] : undefined);
  const owner = old.owner;
  const executable = old.scriptShebang?.executable ?? place.interpreter;
  const shebang = old.scriptShebang?.shebang ?? (place.interpreter ? `#!${place.interpreter}\n` : undefined);
  const generated = scriptsToGenerate(wheel.entryPoints, place.version, new Set(old.scripts.keys()));

  const files = new Map<string, NewFile>();
  const add = (file: NewFile) => {
    if (!scheme.roots.some((r) => isWithin(file.path, r))) throw new PythonError('PATH_ESCAPE', `${wheel.filename}: ${file.path} would land outside ${scheme.roots.join(', ')}`);
    files.set(file.path, file);
  };
  for (const entry of wheel.files) {
    if (entry.name === `${wheel.distInfo}/RECORD`) continue;
    const expected = wheel.record.get(entry.name);
    const exec = (entry.unixMode & 0o111) !== 0;
    if (entry.name.startsWith(`${wheel.dataDir}/`)) {
      const [, key, ...rest] = entry.name.split('/');
      if (rest.length === 0) throw new PythonError('WHEEL_INVALID', `${wheel.filename}: ${entry.name} is not inside a scheme directory of ${wheel.dataDir}`);
      const base = { purelib: scheme.purelib, platlib: scheme.platlib, scripts: scheme.scripts, headers: scheme.headers, data: scheme.data }[key as 'purelib'];
      if (base === undefined) throw new PythonError('WHEEL_INVALID', `${wheel.filename}: unknown scheme directory ${wheel.dataDir}/${key}`);
      if (key === 'scripts') {
        // setuptools' own wrappers for entry points are replaced by ours (pip's is_entrypoint_wrapper).
        const match = rest.join('/').replace(/(\.exe|-script\.py|\.pya)$/i, '');
        if (rest.length === 1 && generated.has(match)) continue;
        if (!executable) throw new PythonError('INSTALL_UNSUPPORTED', `${wheel.filename} ships scripts, and the interpreter of ${place.sitePackages} is not in the image to point them at`);
        add({ path: posix.join(base, ...rest), mode: 0o755, source: { entry, fixShebang: executable }, ...(expected ? { expected } : {}) });
        continue;
      }
      add({ path: posix.join(base, ...rest), mode: exec ? 0o755 : 0o644, source: { entry }, ...(expected ? { expected } : {}) });
      continue;
    }
    add({ path: posix.join(wheel.rootIsPurelib ? scheme.purelib : scheme.platlib, entry.name), mode: exec ? 0o755 : 0o644, source: { entry }, ...(expected ? { expected } : {}) });
  }
  const scripts: string[] = [];
  for (const [name, entry] of shebang ? generated : []) {
    const path = posix.join(scheme.scripts, name);
    add({ path, mode: old.scriptShebang?.entry.mode ?? 0o755, source: { bytes: scriptWrapper(shebang!, entry) } });
    scripts.push(path);
  }
  const newInfo = posix.join(scheme.purelib, wheel.distInfo);
  add({ path: `${newInfo}/INSTALLER`, mode: 0o644, source: { bytes: Buffer.from('patchd\n') } });
  if (old.requested) add({ path: `${newInfo}/REQUESTED`, mode: 0o644, source: { bytes: Buffer.alloc(0) } });

  // Verify every file of the wheel (hash and size against its RECORD) before staging any.
  for (const file of files.values()) {
    if (!('entry' in file.source) || !file.expected?.hash) continue;
    const { digest, size } = await hashStream(await wheel.open(file.source.entry));
    checkRecordRow(wheel, file.source.entry.name, file.expected, digest, size);
  }

  // What goes: the old install's files and their bytecode, its dist-info, and directories that end up empty.
  const removals = new Set<string>();
  for (const p of old.files) {
    removals.add(p);
    if (p.endsWith('.py')) for (const pyc of bytecodeOf(fs, p)) removals.add(pyc);
  }
  removals.add(old.infoDir);
  for (const p of files.keys()) removals.delete(p);
  const whiteouts = collapseEmptyDirectories(fs, removals, new Set(files.keys()), [scheme.purelib, scheme.platlib, scheme.scripts, scheme.data, scheme.headers, ...scheme.roots]);

  // Stage: whiteouts, missing directories, files, then RECORD.
  for (const p of whiteouts) builder.addWhiteout(p);
  const dirMeta: EntryMeta = { mode: 0o755, uid: owner.uid, gid: owner.gid };
  const ensureDir = (dir: string) => {
    const missing: string[] = [];
    for (let d = dir; d !== '' && d !== '.'; d = posix.dirname(d) === '.' ? '' : posix.dirname(d)) {
      const staged = builder.get(d);
      if (staged?.type === 'directory' || staged?.type === 'opaque') break;
      const existing = fs.lstat(d);
      if (!staged && existing?.type === 'directory' && !whiteouts.has(d)) break;
      missing.push(d);
    }
    for (const d of missing.reverse()) builder.addDirectory(d, dirMeta);
  };
  const rows: RecordRow[] = [];
  for (const file of files.values()) {
    ensureDir(posix.dirname(file.path));
    const meta: EntryMeta = { mode: file.mode, uid: owner.uid, gid: owner.gid };
    if ('bytes' in file.source) {
      await builder.addFile(file.path, meta, file.source.bytes);
      rows.push({ path: recordPathOf(scheme.purelib, file.path), hash: sha256Record(file.source.bytes), size: file.source.bytes.length });
      continue;
    }
    const { entry, fixShebang } = file.source;
    if (entry.size <= inMemoryFileLimit || fixShebang) {
      let bytes = await readAllBytes(await wheel.open(entry));
      if (fixShebang) bytes = fixScriptShebang(bytes, fixShebang);
      await builder.addFile(file.path, meta, bytes);
      rows.push({ path: recordPathOf(scheme.purelib, file.path), hash: sha256Record(bytes), size: bytes.length });
    } else {
      const hash = createHash('sha256');
      let size = 0;
      const counting = new Transform({ transform(chunk: Buffer, _e, cb) { hash.update(chunk); size += chunk.length; cb(null, chunk); } });
      const stream = await wheel.open(entry);
      stream.on('error', (error) => counting.destroy(error));
      await builder.addFile(file.path, meta, stream.pipe(counting));
      rows.push({ path: recordPathOf(scheme.purelib, file.path), hash: recordHash(hash.digest()), size });
    }
  }
  rows.push({ path: recordPathOf(scheme.purelib, `${newInfo}/RECORD`) });
  ensureDir(newInfo);
  await builder.addFile(`${newInfo}/RECORD`, { mode: 0o644, uid: owner.uid, gid: owner.gid }, Buffer.from(formatRecord(rows), 'utf8'));
  return { written: files.size + 1, removed: whiteouts.size, scripts, scriptsSkipped: shebang ? [] : [...generated.keys()] };
}

async function hashStream(stream: Readable): Promise<{ digest: Buffer; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) { hash.update(chunk as Buffer); size += (chunk as Buffer).length; }
  return { digest: hash.digest(), size };
}

/** sha256 rows are checked; a wheel recording only another algorithm is trusted through the archive's own digest. */
function checkRecordRow(wheel: Wheel, name: string, row: RecordRow, digest: Buffer, size: number): void {
  const [algorithm, value] = row.hash!.split('=', 2) as [string, string | undefined];
  if (algorithm !== 'sha256') return;
  if (value !== digest.toString('base64url') || (row.size !== undefined && row.size !== size)) {
    throw new PythonError('WHEEL_INVALID', `${wheel.filename}: ${name} does not match the wheel's RECORD (sha256 ${digest.toString('base64url')}, ${size} bytes)`);
  }
}

/** Bytecode the image holds for a source file: `__pycache__/<name>.*.pyc` and Python 2's `<name>.pyc`/`.pyo` beside it. */
function bytecodeOf(fs: ImageFilesystem, source: string): string[] {
  const dir = posix.dirname(source);
  const base = posix.basename(source, '.py');
  const out = [`${dir}/${base}.pyc`, `${dir}/${base}.pyo`].filter((p) => fs.lstat(p) !== undefined);
  const compiled = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.[A-Za-z0-9_-]+(?:\\.opt-\\d+)?\\.py[co]$`);
  for (const name of fs.readdir(`${dir}/__pycache__`)) if (compiled.test(name)) out.push(`${dir}/__pycache__/${name}`);
  return out;
}

/**
 * The whiteouts for `removals`: a directory whose every entry goes (and that
 * receives no new file, and is not one of the scheme's own directories) is
 * whited out as a whole instead of file by file, as pip's uninstall removes
 * directories it empties.
 */
function collapseEmptyDirectories(fs: ImageFilesystem, removals: ReadonlySet<string>, written: ReadonlySet<string>, keep: readonly string[]): Set<string> {
  const gone = new Set([...removals].filter((p) => fs.lstat(p) !== undefined));
  const protectedDirs = new Set<string>();
  for (const k of keep) for (let d = k; d !== '' && d !== '.'; d = posix.dirname(d)) protectedDirs.add(d);
  const receives = new Set<string>();
  for (const w of written) for (let d = posix.dirname(w); d !== '.' && d !== ''; d = posix.dirname(d)) receives.add(d);
  // Deepest first, so a directory of emptied directories collapses too.
  const candidates = new Set<string>();
  for (const p of gone) for (let d = posix.dirname(p); d !== '.' && d !== '' && !protectedDirs.has(d); d = posix.dirname(d)) candidates.add(d);
  for (const dir of [...candidates].sort((a, b) => b.split('/').length - a.split('/').length)) {
    if (receives.has(dir) || fs.lstat(dir)?.type !== 'directory') continue;
    const children = fs.readdir(dir).map((c) => `${dir}/${c}`);
    if (children.length === 0 || !children.every((c) => gone.has(c))) continue;
    for (const c of children) gone.delete(c);
    for (const p of [...gone]) if (p.startsWith(`${dir}/`)) gone.delete(p);
    gone.add(dir);
  }
  // A whited-out directory covers everything under it.
  return new Set([...gone].filter((p) => { for (let d = posix.dirname(p); d !== '.' && d !== ''; d = posix.dirname(d)) if (gone.has(d)) return false; return true; }));
}

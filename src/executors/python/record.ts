import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { PythonError } from './errors.js';

/** One row of a dist-info RECORD (PEP 376 / PEP 627): path relative to site-packages, `sha256=<urlsafe-b64>`, size. */
export interface RecordRow {
  readonly path: string;
  readonly hash?: string;
  readonly size?: number;
}

/** RECORD is CSV as Python's csv module writes it: commas, double quotes around fields that need them, CRLF or LF. */
export function parseRecord(text: string): RecordRow[] {
  const rows: RecordRow[] = [];
  for (const fields of parseCsv(text)) {
    if (fields.length === 0 || (fields.length === 1 && fields[0] === '')) continue;
    const [path, hash, size] = fields;
    if (!path) throw new PythonError('RECORD_INVALID', `RECORD row without a path: ${JSON.stringify(fields)}`);
    const n = size ? Number(size) : undefined;
    rows.push({ path, ...(hash ? { hash } : {}), ...(n !== undefined && Number.isSafeInteger(n) && n >= 0 ? { size: n } : {}) });
  }
  return rows;
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else quoted = false;
      } else field += c;
      continue;
    }
    if (c === '"' && field === '') { quoted = true; started = true; continue; }
    if (c === ',') { row.push(field); field = ''; started = true; continue; }
    if (c === '\r' || c === '\n') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      if (started || field !== '') row.push(field);
      rows.push(row);
      row = []; field = ''; started = false;
      continue;
    }
    field += c;
    started = true;
  }
  if (quoted) throw new PythonError('RECORD_INVALID', 'RECORD ends inside a quoted field');
  if (started || field !== '') { row.push(field); rows.push(row); }
  return rows;
}

/** RECORD as pip writes it: rows sorted, csv quoting where needed, CRLF line ends (csv.writer's default). */
export function formatRecord(rows: readonly RecordRow[]): string {
  const cells = rows.map((r) => [r.path, r.hash ?? '', r.size === undefined ? '' : String(r.size)] as const);
  cells.sort((a, b) => compareTuples(a, b));
  return cells.map((c) => `${c.map(csvField).join(',')}\r\n`).join('');
}

function compareTuples(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** `sha256=` and the digest in urlsafe base64 without padding, as RECORD spells it. */
export function recordHash(digest: Buffer): string {
  return `sha256=${digest.toString('base64url')}`;
}

export function sha256Record(data: Buffer): string {
  return recordHash(createHash('sha256').update(data).digest());
}

/**
 * Resolves a RECORD path (relative to site-packages, possibly climbing with
 * `../`, or absolute) to a root-relative path; undefined when it leaves the
 * image root.
 */
export function resolveRecordPath(sitePackages: string, recordPath: string): string | undefined {
  if (recordPath.includes('\0') || recordPath.includes('\\')) return undefined;
  const joined = recordPath.startsWith('/') ? recordPath : posix.join('/', sitePackages, recordPath);
  const normal = posix.normalize(joined);
  // posix.normalize keeps leading '..' of a relative path only; from '/' it clamps: detect the climb ourselves.
  const depth = (`/${sitePackages}`).split('/').filter(Boolean).length;
  if (!recordPath.startsWith('/')) {
    let level = depth;
    for (const part of recordPath.split('/')) {
      if (part === '..') level--;
      else if (part !== '.' && part !== '') level++;
      if (level < 0) return undefined;
    }
  }
  const rel = normal.replace(/^\/+/, '');
  return rel === '' ? undefined : rel;
}

/** The RECORD path of a root-relative file, relative to site-packages (`../../../bin/x` for scripts). */
export function recordPathOf(sitePackages: string, rootRelative: string): string {
  return posix.relative(posix.join('/', sitePackages), posix.join('/', rootRelative));
}

/** Whether `path` is `dir` or lies under it (both root-relative). */
export function isWithin(path: string, dir: string): boolean {
  return dir === '' || path === dir || path.startsWith(`${dir}/`);
}

import type { PackageRecord } from '../types.js';
import { InventoryError } from '../errors.js';

/**
 * go.mod files of the image's own Go source. The module cache (GOPATH/pkg/mod),
 * vendor/ and testdata/ trees and the toolchain's own GOROOT hold other
 * modules' go.mod files, which describe nothing this image builds.
 */
export function isGoModPath(path: string): boolean {
  if (!/(^|\/)go\.mod$/.test(path)) return false;
  if (/(^|\/)(pkg\/mod|vendor|testdata)\//.test(path)) return false;
  return !/^(usr\/local\/go|usr\/lib\/go(-[^/]+)?|usr\/lib\/golang|usr\/share\/go(-[^/]+)?)\//.test(path);
}

interface Directive { readonly verb: string; readonly args: readonly string[]; readonly comment: string }

/**
 * The requirements of one go.mod (golang.org/x/mod/modfile's grammar: a verb
 * and its arguments per line, or a verb with a parenthesised block of them;
 * `//` comments, `// indirect` on a requirement). `replace` is honoured: a
 * module replaced by another module version is recorded as that version,
 * marked as a replacement; one replaced by a directory is local source, not a
 * module version, and is left out.
 */
export function readGoMod(text: string, path: string): PackageRecord[] {
  let module: string | undefined;
  let goVersion: string | undefined;
  const requires: { path: string; version: string; indirect: boolean }[] = [];
  const replaces: { from: string; fromVersion?: string; to: string; toVersion?: string }[] = [];
  for (const d of directives(text)) {
    switch (d.verb) {
      case 'module': module = d.args[0]; break;
      case 'go': goVersion = d.args[0]; break;
      case 'require':
        if (d.args.length >= 2) requires.push({ path: d.args[0]!, version: d.args[1]!, indirect: /^indirect(;|$)/.test(d.comment) });
        break;
      case 'replace': {
        const arrow = d.args.indexOf('=>');
        if (arrow < 1) break;
        const [from, fromVersion] = d.args.slice(0, arrow);
        const [to, toVersion] = d.args.slice(arrow + 1);
        if (from && to) replaces.push({ from, to, ...(fromVersion ? { fromVersion } : {}), ...(toVersion ? { toVersion } : {}) });
        break;
      }
    }
  }
  if (!module) throw new InventoryError('RECORD_INVALID', 'go.mod has no module directive');
  const location = path.slice(0, path.lastIndexOf('/') + 1).replace(/\/$/, '') || '.';
  const base = { ecosystem: 'go', class: 'library', path, location, goOrigin: 'go.mod' } as const;
  const out: PackageRecord[] = [];
  for (const r of requires) {
    // A replace naming a version applies to that version only; one without applies to all (the later one wins, as in modfile).
    const replace = replaces.filter((x) => x.from === r.path && (x.fromVersion === undefined || x.fromVersion === r.version)).sort((a, b) => (a.fromVersion ? 1 : 0) - (b.fromVersion ? 1 : 0)).at(-1);
    const facts = { module, ...(goVersion ? { goVersion } : {}), indirect: r.indirect };
    if (!replace) {
      out.push({ ...base, name: r.path, version: r.version, goMod: facts });
    } else if (replace.toVersion) {
      out.push({ ...base, name: replace.to, version: replace.toVersion, goMod: { ...facts, replaces: `${r.path} ${r.version}` } });
    }
  }
  return out;
}

/** One directive per requirement line, block lines expanded (`require ( a v1 \n b v2 )`). */
function* directives(text: string): Generator<Directive> {
  let block: string | undefined;
  for (const raw of text.split('\n')) {
    const at = commentStart(raw);
    const comment = at < 0 ? '' : raw.slice(at + 2).trim();
    const tokens = tokenize(at < 0 ? raw : raw.slice(0, at));
    if (tokens.length === 0) continue;
    if (block !== undefined) {
      if (tokens[0] === ')') { block = undefined; continue; }
      yield { verb: block, args: tokens, comment };
      continue;
    }
    if (tokens[1] === '(') { if (tokens.at(-1) !== ')') block = tokens[0]; continue; }
    yield { verb: tokens[0]!, args: tokens.slice(1), comment };
  }
}

/** Where a `//` comment starts outside a quoted string, or -1. */
function commentStart(line: string): number {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === '`') {
      quote = c;
    } else if (c === '/' && line[i + 1] === '/') {
      return i;
    }
  }
  return -1;
}

/** Whitespace-separated tokens; "interpreted" and `raw` strings unquoted; `=>`, `(` and `)` stand alone. */
function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|`([^`]*)`|=>|[()]|[^\s"`()]+?(?==>|[\s()]|$)/g;
  for (const m of line.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1].replace(/\\(.)/g, '$1'));
    else if (m[2] !== undefined) out.push(m[2]);
    else out.push(m[0]);
  }
  return out.filter((t) => t !== '');
}

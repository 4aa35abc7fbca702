import { DebError } from './errors.js';

/**
 * One deb822 paragraph (a stanza of dpkg's status file, a Packages index,
 * a control file, a Release file). Values are kept as written: the first
 * line without the single space after the colon, continuation lines joined
 * with '\n' and keeping their leading space, so formatting round-trips.
 */
export interface Paragraph {
  readonly fields: ReadonlyArray<readonly [name: string, value: string]>;
}

export function parseParagraphs(text: string, options: { comments?: boolean } = {}): Paragraph[] {
  const out: Paragraph[] = [];
  let fields: [string, string][] = [];
  const flush = () => {
    if (fields.length > 0) out.push({ fields });
    fields = [];
  };
  for (const line of text.split('\n')) {
    if (line === '' || /^\s+$/.test(line) && fields.length === 0) { flush(); continue; }
    if (options.comments && line.startsWith('#')) continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = fields[fields.length - 1];
      if (!last) throw new DebError('CONTROL_INVALID', `continuation line before any field: ${JSON.stringify(line.slice(0, 80))}`);
      last[1] = `${last[1]}\n${line}`;
      continue;
    }
    if (/^\s*$/.test(line)) { flush(); continue; }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new DebError('CONTROL_INVALID', `malformed field line: ${JSON.stringify(line.slice(0, 80))}`);
    const value = line.slice(colon + 1);
    fields.push([line.slice(0, colon), value.startsWith(' ') ? value.slice(1) : value]);
  }
  flush();
  return out;
}

export function field(p: Paragraph, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of p.fields) if (n.toLowerCase() === lower) return v;
  return undefined;
}

/** `Name: value` lines; an empty first line (multi-line fields such as Conffiles) gets no trailing space. */
export function formatParagraph(p: Paragraph): string {
  return p.fields.map(([name, value]) => (value.startsWith('\n') || value === '' ? `${name}:${value}\n` : `${name}: ${value}\n`)).join('');
}

export interface Relation {
  readonly name: string;
  readonly arch?: string;
  readonly op?: '<<' | '<=' | '=' | '>=' | '>>';
  readonly version?: string;
}

/** 'a (>= 1) | b:any, c [amd64] <!nocheck>' → [[a>=1, b:any], [c]]. */
export function parseRelations(value: string): Relation[][] {
  const groups: Relation[][] = [];
  for (const group of value.replace(/\n/g, ' ').split(',')) {
    const alternatives: Relation[] = [];
    for (const alt of group.split('|')) {
      const clean = alt.replace(/\[[^\]]*\]/g, '').replace(/<[^>]*>/g, ' ').trim();
      if (!clean) continue;
      const m = /^([a-z0-9][a-z0-9+.-]*)(?::([a-z0-9-]+))?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?$/i.exec(clean);
      if (!m) throw new DebError('CONTROL_INVALID', `malformed relation ${JSON.stringify(alt.trim())}`);
      const op = m[3] === '<' ? '<=' : m[3] === '>' ? '>=' : (m[3] as Relation['op']);
      alternatives.push({ name: m[1]!, ...(m[2] ? { arch: m[2] } : {}), ...(op ? { op, version: m[4]! } : {}) });
    }
    if (alternatives.length > 0) groups.push(alternatives);
  }
  return groups;
}

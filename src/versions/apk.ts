import { invalid } from './errors.js';

/*
 * Alpine versions as apk-tools 3 orders them (src/version.c):
 *   digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}
 * Each version is cut into typed tokens; two versions are compared token by
 * token while the token kinds agree. apk-tools 2.x differs only for digit runs
 * with leading zeros (8.2.0 vs 8.2.001) and has no ~hash; the published
 * vectors are apk-tools 3's, which Alpine 3.23 and later ship.
 */

// Token kinds, in the order the tail comparison relies on ("a later kind is older").
const enum T { InitialDigit, Digit, Letter, Suffix, SuffixNo, CommitHash, RevisionNo, End, Invalid }

// Suffix ranks: the pre-release ones sort below "no suffix" (5), the others above.
const suffixRank: Record<string, number> = { alpha: 1, beta: 2, pre: 3, rc: 4, cvs: 6, svn: 7, git: 8, hg: 9, p: 10 };
const NO_SUFFIX = 5;

interface Token { kind: T; value: string; suffix: number }

/** A cursor over one version string; `next()` mirrors token_next()'s validation of what may follow what. */
class Lexer {
  private pos = 0;
  readonly t: Token = { kind: T.InitialDigit, value: '', suffix: 0 };

  constructor(private readonly s: string) {
    this.digits();
  }

  private span(re: RegExp): string {
    const start = this.pos;
    while (this.pos < this.s.length && re.test(this.s[this.pos]!)) this.pos++;
    return this.s.slice(start, this.pos);
  }

  private digits(): void {
    this.t.value = this.span(/[0-9]/);
    if (this.t.value === '') this.t.kind = T.Invalid;
  }

  next(): void {
    const t = this.t;
    const ch = this.s[this.pos];
    if (ch === undefined) { t.kind = T.End; return; }
    if (ch >= 'a' && ch <= 'z') {
      if (t.kind > T.Digit) { t.kind = T.Invalid; return; }
      t.value = ch;
      t.kind = T.Letter;
      this.pos++;
    } else if (ch === '.' || (ch >= '0' && ch <= '9')) {
      if (ch === '.') {
        if (t.kind > T.Digit) { t.kind = T.Invalid; return; }
        this.pos++;
      }
      if (t.kind === T.InitialDigit || t.kind === T.Digit) t.kind = T.Digit;
      else if (t.kind === T.Suffix) t.kind = T.SuffixNo;
      else { t.kind = T.Invalid; return; }
      this.digits();
    } else if (ch === '_') {
      if (t.kind > T.SuffixNo) { t.kind = T.Invalid; return; }
      this.pos++;
      t.value = this.span(/[a-z]/);
      t.suffix = suffixRank[t.value] ?? 0;
      t.kind = t.suffix === 0 ? T.Invalid : T.Suffix;
    } else if (ch === '~') {
      if (t.kind >= T.CommitHash) { t.kind = T.Invalid; return; }
      this.pos++;
      t.value = this.span(/[0-9a-f]/);
      t.kind = t.value === '' ? T.Invalid : T.CommitHash;
    } else if (ch === '-') {
      if (t.kind >= T.RevisionNo || this.s[this.pos + 1] !== 'r') { t.kind = T.Invalid; return; }
      this.pos += 2;
      t.kind = T.RevisionNo;
      this.digits();
    } else {
      t.kind = T.Invalid;
    }
  }
}

// apk_blob_sort: bytewise over the common length, then the shorter first.
function stringSort(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

// Decimal strings of any length, by value (apk reads them into a uint64; none of the vectors come near that).
function numeric(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return stringSort(x, y);
}

function tokenCompare(a: Token, b: Token): number {
  switch (a.kind) {
    case T.Digit:
      // A leading zero makes the component a string (Gentoo's rule): 1.02 < 1.1, 8.2.0 < 8.2.001.
      if (a.value[0] === '0' || b.value[0] === '0') return stringSort(a.value, b.value);
      return numeric(a.value, b.value);
    case T.InitialDigit:
    case T.SuffixNo:
    case T.RevisionNo:
      return numeric(a.value, b.value);
    case T.Letter:
      return stringSort(a.value, b.value);
    case T.Suffix:
      return a.suffix === b.suffix ? 0 : a.suffix < b.suffix ? -1 : 1;
    default:
      return stringSort(a.value, b.value);
  }
}

/** apk_version_validate: the whole string must lex into tokens in an allowed order. */
export function isValidApkVersion(v: string): boolean {
  const l = new Lexer(v);
  while (l.t.kind < T.End) l.next();
  return l.t.kind === T.End;
}

/**
 * apk_version_compare. Like apk it orders a version that turns invalid part-way
 * (1.0 < 1.0bc) by what comes before; one with no leading number at all is
 * refused, since apk would call any two such strings equal.
 */
export function compareApkVersions(a: string, b: string): number {
  const x = new Lexer(a);
  const y = new Lexer(b);
  if (x.t.kind === T.Invalid) throw invalid('apk', a);
  if (y.t.kind === T.Invalid) throw invalid('apk', b);
  while (x.t.kind === y.t.kind && x.t.kind < T.End) {
    const r = tokenCompare(x.t, y.t);
    if (r !== 0) return r;
    x.next();
    y.next();
  }
  if (x.t.kind === y.t.kind) return 0;
  // Equal so far: the longer version is newer unless it goes on with a pre-release suffix (1.0_rc1 < 1.0).
  if (x.t.kind === T.Suffix && x.t.suffix < NO_SUFFIX) return -1;
  if (y.t.kind === T.Suffix && y.t.suffix < NO_SUFFIX) return 1;
  return x.t.kind > y.t.kind ? -1 : 1;
}

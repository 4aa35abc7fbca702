import { invalid } from './errors.js';

/** apk-tools' version.c tokens, in the order its comparison relies on. */
const enum T { DigitOrZero, Digit, Letter, Suffix, SuffixNo, RevisionNo, End, Invalid }
const preSuffixes = ['alpha', 'beta', 'pre', 'rc'];
const postSuffixes = ['cvs', 'svn', 'git', 'hg', 'p'];

interface Cursor { s: string; pos: number; type: T }

function nextToken(c: Cursor): void {
  let n: T = T.Invalid;
  const ch = c.s[c.pos];
  if (ch === undefined) n = T.End;
  else if ((c.type === T.Digit || c.type === T.DigitOrZero) && ch >= 'a' && ch <= 'z') n = T.Letter;
  else if (c.type === T.Letter && ch >= '0' && ch <= '9') n = T.Digit;
  else if (c.type === T.Suffix && ch >= '0' && ch <= '9') n = T.SuffixNo;
  else {
    if (ch === '.') n = T.DigitOrZero;
    else if (ch === '_') n = T.Suffix;
    else if (ch === '-' && c.s[c.pos + 1] === 'r') { n = T.RevisionNo; c.pos++; }
    c.pos++;
  }
  if (n < c.type && !((n === T.DigitOrZero && c.type === T.Digit) || (n === T.Suffix && c.type === T.SuffixNo) || (n === T.Digit && c.type === T.Letter))) n = T.Invalid;
  c.type = n;
}

function getToken(c: Cursor): number {
  let v = 0;
  let i = c.pos;
  let next: T = T.Invalid;
  const s = c.s;
  switch (c.type) {
    case T.DigitOrZero:
      // Leading zeros sort below any number: 1.02 < 1.1.
      if (s[i] === '0') {
        while (s[i] === '0') i++;
        next = T.Digit;
        v = -(i - c.pos);
        break;
      }
    // falls through
    case T.Digit:
    case T.SuffixNo:
    case T.RevisionNo:
      while (i < s.length && s[i]! >= '0' && s[i]! <= '9') v = v * 10 + (s.charCodeAt(i++) - 48);
      break;
    case T.Letter:
      v = s.charCodeAt(i++);
      break;
    case T.Suffix: {
      const rest = s.slice(i);
      const pre = preSuffixes.findIndex((p) => rest.startsWith(p));
      if (pre >= 0) { v = pre - preSuffixes.length; i += preSuffixes[pre]!.length; break; }
      const post = postSuffixes.findIndex((p) => rest.startsWith(p));
      if (post >= 0) { v = post; i += postSuffixes[post]!.length; break; }
      c.type = T.Invalid;
      return -1;
    }
    default:
      c.type = T.Invalid;
      return -1;
  }
  c.pos = i;
  if (c.pos >= s.length) c.type = T.End;
  else if (next !== T.Invalid) c.type = next;
  else nextToken(c);
  return v;
}

/** apk_version_compare: component by component; a shorter version is older unless the longer one continues with a pre-release suffix. */
export function compareApkVersions(a: string, b: string): number {
  if (!/^[0-9]/.test(a)) throw invalid('apk', a);
  if (!/^[0-9]/.test(b)) throw invalid('apk', b);
  const x: Cursor = { s: a, pos: 0, type: T.Digit };
  const y: Cursor = { s: b, pos: 0, type: T.Digit };
  let av = 0;
  let bv = 0;
  while (x.type === y.type && x.type !== T.End && x.type !== T.Invalid && av === bv) {
    av = getToken(x);
    bv = getToken(y);
  }
  if (av < bv) return -1;
  if (av > bv) return 1;
  if (x.type === y.type) return 0;
  if (x.type === T.Suffix && getToken({ ...x }) < 0) return -1;
  if (y.type === T.Suffix && getToken({ ...y }) < 0) return 1;
  if (x.type > y.type) return -1;
  if (y.type > x.type) return 1;
  return 0;
}

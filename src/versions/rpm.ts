import { invalid } from './errors.js';

const alnum = /[A-Za-z0-9]/;
const digit = /[0-9]/;
const alpha = /[A-Za-z]/;

/**
 * rpmvercmp (rpmio/rpmvercmp.c): alternating runs of digits and letters,
 * separators ignored, numbers beat letters, '~' sorts before everything (even
 * the end), '^' after the end but before anything else.
 */
function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && !alnum.test(a[i]!) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !alnum.test(b[j]!) && b[j] !== '~' && b[j] !== '^') j++;
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++; j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++; j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const numeric = digit.test(a[i]!);
    const run = numeric ? digit : alpha;
    let ei = i;
    while (ei < a.length && run.test(a[ei]!)) ei++;
    let ej = j;
    while (ej < b.length && run.test(b[ej]!)) ej++;
    // Different kinds of segment: the numeric one is newer.
    if (ej === j) return numeric ? 1 : -1;
    let sa = a.slice(i, ei);
    let sb = b.slice(j, ej);
    if (numeric) {
      sa = sa.replace(/^0+/, '');
      sb = sb.replace(/^0+/, '');
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1;
    }
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = ei;
    j = ej;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** rpmvercmp on two bare version (or release) strings; no epoch or release is split off. */
export function compareRpmVersions(a: string, b: string): number {
  return rpmvercmp(a, b);
}

export interface Evr { readonly epoch: number; readonly version: string; readonly release?: string }

/** `[epoch:]version[-release]` (rpmverParse): the epoch is the digits before ':', the release whatever follows the last '-'. */
export function parseEvr(input: string): Evr {
  const m = /^(?:(\d+):)?([^:\s-][^:\s]*?)(?:-([^:\s-]+))?$/.exec(input.trim());
  if (!m) throw invalid('rpm', input);
  return { epoch: m[1] ? Number(m[1]) : 0, version: m[2]!, ...(m[3] !== undefined ? { release: m[3] } : {}) };
}

function compareEvr(a: string, b: string, releaseOnlyIfBoth: boolean): number {
  const x = parseEvr(a);
  const y = parseEvr(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  const v = rpmvercmp(x.version, y.version);
  if (v !== 0) return v;
  if (x.release === undefined || y.release === undefined) {
    if (releaseOnlyIfBoth || x.release === y.release) return 0;
    return x.release === undefined ? -1 : 1;
  }
  return rpmvercmp(x.release, y.release);
}

/**
 * rpmverCmp, which `rpm.vercmp` and `rpm --eval` use: a missing epoch is 0 and
 * a missing release sorts before any release (1.0 < 1.0-1).
 */
export function compareRpmEvr(a: string, b: string): number {
  return compareEvr(a, b, false);
}

/**
 * rpmverOverlap's reading, as dependency and advisory matching use it: the
 * release counts only when both sides have one, so a fix named "1.2.3"
 * covers every 1.2.3-N.
 */
export function compareRpmEvrLoose(a: string, b: string): number {
  return compareEvr(a, b, true);
}

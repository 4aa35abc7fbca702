import { VersionError } from './errors.js';

export { VersionError };

/** A Debian version: [epoch:]upstream[-revision] (deb-version(7)). */
export interface DpkgVersion {
  readonly epoch: number;
  readonly upstream: string;
  readonly revision: string;
}


export function parseDpkgVersion(input: string): DpkgVersion {
  const v = input.trim();
  if (v === '' || /\s/.test(v)) throw new VersionError('VERSION_INVALID', `invalid Debian version ${JSON.stringify(input)}`);
  const colon = v.indexOf(':');
  let epoch = 0;
  let rest = v;
  if (colon >= 0) {
    const e = v.slice(0, colon);
    if (!/^\d+$/.test(e)) throw new VersionError('VERSION_INVALID', `invalid epoch in ${JSON.stringify(input)}`);
    epoch = Number(e);
    rest = v.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  const upstream = dash >= 0 ? rest.slice(0, dash) : rest;
  const revision = dash >= 0 ? rest.slice(dash + 1) : '';
  if (upstream === '' || !/^[0-9A-Za-z.+~:-]*$/.test(upstream) || !/^[0-9A-Za-z.+~]*$/.test(revision)) {
    throw new VersionError('VERSION_INVALID', `invalid Debian version ${JSON.stringify(input)}`);
  }
  return { epoch, upstream, revision };
}

// dpkg's order(): '~' sorts before everything (even the end), letters before non-letters.
function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[0-9]/.test(c)) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** dpkg's verrevcmp (lib/dpkg/version.c). */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !/[0-9]/.test(a[i]!)) || (j < b.length && !/[0-9]/.test(b[j]!))) {
      const ac = order(i < a.length && !/[0-9]/.test(a[i]!) ? a[i] : i < a.length ? '0' : undefined);
      const bc = order(j < b.length && !/[0-9]/.test(b[j]!) ? b[j] : j < b.length ? '0' : undefined);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (i < a.length && /[0-9]/.test(a[i]!) && j < b.length && /[0-9]/.test(b[j]!)) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && /[0-9]/.test(a[i]!)) return 1;
    if (j < b.length && /[0-9]/.test(b[j]!)) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

export function compareDpkgVersions(a: string, b: string): number {
  const x = parseDpkgVersion(a);
  const y = parseDpkgVersion(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return compareFragment(x.upstream, y.upstream) || compareFragment(x.revision, y.revision);
}

export type DpkgRelationOp = '<<' | '<=' | '=' | '>=' | '>>' | '<' | '>';

export function satisfiesDpkgRelation(version: string, op: DpkgRelationOp, ref: string): boolean {
  const c = compareDpkgVersions(version, ref);
  switch (op) {
    case '<<': return c < 0;
    case '<=': case '<': return c <= 0;
    case '=': return c === 0;
    case '>=': case '>': return c >= 0;
    case '>>': return c > 0;
  }
}

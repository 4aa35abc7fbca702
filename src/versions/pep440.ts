import { invalid } from './errors.js';

/** A PEP 440 version, normalised (alternate spellings folded: 'alpha' → a, 'c'/'pre'/'preview' → rc, '-1' → post 1, ...). */
export interface Pep440Version {
  readonly epoch: number;
  readonly release: readonly number[];
  readonly pre?: readonly ['a' | 'b' | 'rc', number];
  readonly post?: number;
  readonly dev?: number;
  readonly local?: readonly (string | number)[];
}

// packaging's VERSION_PATTERN, case-insensitive, surrounding whitespace and a leading 'v' allowed.
const pattern = new RegExp(
  '^\\s*v?(?:(?:(?<epoch>[0-9]+)!)?(?<release>[0-9]+(?:\\.[0-9]+)*)'
  + '(?<pre>[-_.]?(?<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?<pre_n>[0-9]+)?)?'
  + '(?<post>(?:-(?<post_n1>[0-9]+))|(?:[-_.]?(?<post_l>post|rev|r)[-_.]?(?<post_n2>[0-9]+)?))?'
  + '(?<dev>[-_.]?(?<dev_l>dev)[-_.]?(?<dev_n>[0-9]+)?)?)'
  + '(?:\\+(?<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?\\s*$',
  'i',
);

export function parsePep440(input: string): Pep440Version {
  const m = pattern.exec(input);
  if (!m?.groups) throw invalid('PEP 440', input);
  const g = m.groups;
  const preLabel = g['pre_l']?.toLowerCase();
  const pre = preLabel === undefined ? undefined
    : [preLabel === 'alpha' || preLabel === 'a' ? 'a' : preLabel === 'beta' || preLabel === 'b' ? 'b' : 'rc', Number(g['pre_n'] ?? 0)] as const;
  const post = g['post'] !== undefined ? Number(g['post_n1'] ?? g['post_n2'] ?? 0) : undefined;
  const dev = g['dev'] !== undefined ? Number(g['dev_n'] ?? 0) : undefined;
  const local = g['local']?.toLowerCase().split(/[-_.]/).map((p) => (/^[0-9]+$/.test(p) ? Number(p) : p));
  return {
    epoch: Number(g['epoch'] ?? 0),
    release: g['release']!.split('.').map(Number),
    ...(pre ? { pre } : {}),
    ...(post !== undefined ? { post } : {}),
    ...(dev !== undefined ? { dev } : {}),
    ...(local ? { local } : {}),
  };
}

const preRank = { a: 0, b: 1, rc: 2 } as const;

/** packaging's _cmpkey ordering: epoch, release (trailing zeros ignored), pre, post, dev, local. */
export function comparePep440(a: string, b: string): number {
  const x = parsePep440(a);
  const y = parsePep440(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  const rel = compareRelease(x.release, y.release);
  if (rel !== 0) return rel;
  const pre = cmp(preKey(x), preKey(y));
  if (pre !== 0) return pre;
  const post = cmp(x.post === undefined ? [-Infinity] : [x.post], y.post === undefined ? [-Infinity] : [y.post]);
  if (post !== 0) return post;
  const dev = cmp(x.dev === undefined ? [Infinity] : [x.dev], y.dev === undefined ? [Infinity] : [y.dev]);
  if (dev !== 0) return dev;
  return compareLocal(x.local, y.local);
}

function compareRelease(a: readonly number[], b: readonly number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** A dev release without a pre-release sorts before every pre-release of its version (1.0.dev1 < 1.0a1). */
function preKey(v: Pep440Version): number[] {
  if (v.pre === undefined && v.post === undefined && v.dev !== undefined) return [-Infinity];
  if (v.pre === undefined) return [Infinity];
  return [preRank[v.pre[0]], v.pre[1]];
}

function cmp(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? -Infinity;
    const y = b[i] ?? -Infinity;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Local segments: absent < present; numbers beat strings; strings compare lexically; a longer list wins ties. */
function compareLocal(a: readonly (string | number)[] | undefined, b: readonly (string | number)[] | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x !== typeof y) return typeof x === 'number' ? 1 : -1;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

import { comparePep440, parsePep440 } from '../../versions/pep440.js';

/**
 * Whether a Python version satisfies a `Requires-Python` specifier set
 * (PEP 440 clauses joined by commas). An interpreter is a final release, so
 * pre-release subtleties of `<`/`>` do not arise. A clause that does not
 * parse is ignored, as pip ignores an invalid Requires-Python.
 */
export function satisfiesRequiresPython(version: string, specifier: string): boolean {
  return specifier.split(',').map((c) => c.trim()).filter(Boolean).every((clause) => satisfiesClause(version, clause));
}

/**
 * The same question when only `major.minor` of the interpreter is known: the
 * answer for every micro release of it, or 'unknown' when it depends on the
 * micro release (`>=3.11.4` for some Python 3.11).
 */
export function requiresPythonVerdict(version: { major: number; minor: number; micro?: number }, specifier: string): boolean | 'unknown' {
  if (version.micro !== undefined) return satisfiesRequiresPython(`${version.major}.${version.minor}.${version.micro}`, specifier);
  const low = satisfiesRequiresPython(`${version.major}.${version.minor}.0`, specifier);
  const high = satisfiesRequiresPython(`${version.major}.${version.minor}.999`, specifier);
  return low === high ? low : 'unknown';
}

function satisfiesClause(version: string, clause: string): boolean {
  const m = /^(~=|===|==|!=|<=|>=|<|>)\s*(\S+)$/.exec(clause);
  if (!m) return true;
  const [, op, operand] = m as unknown as [string, string, string];
  if (op === '===') return version === operand;
  const wildcard = operand.endsWith('.*');
  const target = wildcard ? operand.slice(0, -2) : operand;
  try { parsePep440(target); } catch { return true; }
  if (wildcard) {
    if (op === '==' || op === '!=') {
      const match = prefixMatches(version, target);
      return op === '==' ? match : !match;
    }
    // Legacy `>=3.6.*`: read as `>=3.6`.
  }
  const c = comparePep440(version, target);
  switch (op) {
    case '==': return c === 0;
    case '!=': return c !== 0;
    case '<=': return c <= 0;
    case '>=': return c >= 0;
    case '<': return c < 0;
    case '>': return c > 0;
    case '~=': {
      // ~=X.Y.Z means >=X.Y.Z, ==X.Y.*
      const release = parsePep440(target).release;
      if (release.length < 2) return true;
      return c >= 0 && prefixMatches(version, release.slice(0, -1).join('.'));
    }
    default: return true;
  }
}

/** `==3.11.*`: the release segments of `version` start with those of `prefix` (zero-padded). */
function prefixMatches(version: string, prefix: string): boolean {
  const v = parsePep440(version);
  const p = parsePep440(prefix);
  if (v.epoch !== p.epoch) return false;
  return p.release.every((n, i) => (v.release[i] ?? 0) === n);
}

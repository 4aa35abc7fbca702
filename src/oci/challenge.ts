export interface Challenge {
  readonly scheme: string; // lower-case: 'bearer', 'basic'
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses WWW-Authenticate (RFC 7235): `Bearer realm="https://a/t",service="x",scope="repository:r:pull,push"`.
 * Quoted values may contain commas and escaped quotes; several challenges may share one header.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipSpace = () => { while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++; };
  while (i < s.length) {
    skipSpace();
    while (s[i] === ',') { i++; skipSpace(); }
    const schemeMatch = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
    if (!schemeMatch) break;
    const scheme = schemeMatch[0].toLowerCase();
    i += schemeMatch[0].length;
    const params: Record<string, string> = {};
    for (;;) {
      skipSpace();
      const save = i;
      const key = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
      if (!key) break;
      i += key[0].length;
      skipSpace();
      if (s[i] !== '=') { i = save; break; } // the next challenge's scheme
      i++;
      skipSpace();
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        const token = /^[^,\s]*/.exec(s.slice(i))![0];
        value = token;
        i += token.length;
      }
      params[key[0].toLowerCase()] = value;
      skipSpace();
      if (s[i] === ',') i++;
    }
    out.push({ scheme, params });
  }
  return out;
}

/** The challenge a client answers from a WWW-Authenticate header: Bearer when offered, else Basic. */
export function pickChallenge(value: string | readonly string[] | undefined): Challenge | undefined {
  const text = typeof value === 'string' ? value : value?.join(', ');
  if (!text) return undefined;
  const all = parseChallenges(text);
  return all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
}

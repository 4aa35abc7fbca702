/** RFC 6901: '~' is written '~0' and '/' is written '~1' inside a reference token. */
export function jsonPointer(tokens: readonly string[]): string {
  return tokens.map((t) => `/${t.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** The tokens of an RFC 6901 pointer ('' is the whole document). */
export function pointerTokens(pointer: string): string[] {
  if (pointer === '') return [];
  // Pointers are built by this module from paths it chose: a bad one is a bug, not input.
  if (!pointer.startsWith('/')) throw new Error(`JSON pointer ${JSON.stringify(pointer)} does not start with /`);
  return pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export interface ReplaceOperation {
  readonly op: 'replace';
  readonly path: string;
  readonly value: unknown;
}

/** An RFC 6902 patch as an AdmissionResponse carries it: base64 of its JSON. */
export function encodePatch(operations: readonly ReplaceOperation[]): string {
  return Buffer.from(JSON.stringify(operations)).toString('base64');
}

/**
 * Copa's `--tag-suffix` rule: the suffix is joined to the tag with `-`
 * (`patched` → `<tag>-patched`), empty means `patched`. A leading `-` is
 * accepted and not doubled (`-patched` → `<tag>-patched`), so configs written
 * for patchd's old literal suffix keep their tags. Returns the literal text
 * appended to the tag.
 */
export function copaTagSuffix(suffix: string): string {
  const bare = suffix.startsWith('-') ? suffix.slice(1) : suffix;
  return `-${bare === '' ? 'patched' : bare}`;
}

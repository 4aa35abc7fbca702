import { compareNuGetVersions, parseNuGetVersion } from '../../versions/nuget.js';
import { DotnetError } from './errors.js';

/** What patchd reads from a package's .nuspec: who it is and what it depends on, per target framework. */
export interface Nuspec {
  readonly id: string;
  readonly version: string;
  /** `targetFramework` of each group ('' for the ungrouped, legacy list). */
  readonly dependencyGroups: readonly { readonly targetFramework: string; readonly dependencies: readonly NuspecDependency[] }[];
}

export interface NuspecDependency {
  readonly id: string;
  /** A NuGet version range: `1.0` (at least), `[1.0]`, `[1.0, 2.0)`, `(, 3.0]`. */
  readonly range: string;
}

/**
 * Reads the few elements patchd needs from nuspec XML (a flat, generated
 * document) with a tag scanner: comments and CDATA are dropped first, and the
 * five XML entities decoded in values.
 */
export function parseNuspec(xml: string): Nuspec {
  const text = xml.replace(/^\uFEFF/, '').replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  const element = (name: string) => new RegExp(`<(?:[A-Za-z0-9_.-]+:)?${name}(?:\\s[^>]*)?>([^<]*)</(?:[A-Za-z0-9_.-]+:)?${name}\\s*>`).exec(text)?.[1]?.trim();
  const id = element('id');
  const version = element('version');
  if (!id || !version) throw new DotnetError('NUPKG_INVALID', 'the .nuspec has no <id> or <version>');
  const groups: { targetFramework: string; dependencies: NuspecDependency[] }[] = [];
  const dependenciesBlock = /<(?:[A-Za-z0-9_.-]+:)?dependencies\s*>([\s\S]*?)<\/(?:[A-Za-z0-9_.-]+:)?dependencies\s*>/.exec(text)?.[1] ?? '';
  const groupPattern = /<(?:[A-Za-z0-9_.-]+:)?group\b([^>]*?)(?:\/>|>([\s\S]*?)<\/(?:[A-Za-z0-9_.-]+:)?group\s*>)/g;
  const ungrouped = dependenciesBlock.replace(groupPattern, (_all, attrs: string, body: string | undefined) => {
    groups.push({ targetFramework: attribute(attrs, 'targetFramework') ?? '', dependencies: dependenciesIn(body ?? '') });
    return '';
  });
  const flat = dependenciesIn(ungrouped);
  if (flat.length > 0) groups.push({ targetFramework: '', dependencies: flat });
  return { id: decode(id), version: decode(version), dependencyGroups: groups };
}

function dependenciesIn(xml: string): NuspecDependency[] {
  const out: NuspecDependency[] = [];
  for (const m of xml.matchAll(/<(?:[A-Za-z0-9_.-]+:)?dependency\b([^>]*?)\/?>/g)) {
    const id = attribute(m[1]!, 'id');
    if (!id) continue;
    const exclude = (attribute(m[1]!, 'exclude') ?? '').split(/[,;]/).map((s) => s.trim().toLowerCase());
    // A dependency excluded from everything (or from the runtime) puts nothing in the app.
    if (exclude.includes('all') || exclude.includes('runtime')) continue;
    out.push({ id, range: attribute(m[1]!, 'version') ?? '0.0.0' });
  }
  return out;
}

function attribute(attrs: string, name: string): string | undefined {
  const m = new RegExp(`(?:^|\\s)${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(attrs);
  return m ? decode((m[1] ?? m[2]!).trim()) : undefined;
}

function decode(value: string): string {
  return value.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_m, e: string) => {
    switch (e) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'quot': return '"';
      case 'apos': return "'";
      default: return String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    }
  });
}

/** Whether `version` lies in the NuGet version range (a bare version is a minimum, inclusive). */
export function satisfiesRange(version: string, range: string): boolean {
  const r = range.trim();
  if (r === '' || r === '*') return true;
  if (!/^[[(]/.test(r)) return compareNuGetVersions(version, r) >= 0;
  const m = /^([[(])\s*([^,\])]*?)\s*(?:,\s*([^\])]*?)\s*)?([\])])$/.exec(r);
  if (!m) throw new DotnetError('NUPKG_INVALID', `invalid version range ${JSON.stringify(range)} in the .nuspec`);
  const [, open, low, high, close] = m;
  // [1.0] is exactly 1.0; [1.0,) and (1.0,) are open above.
  const upper = m[3] === undefined ? low : high;
  if (low) {
    parseNuGetVersion(low);
    const c = compareNuGetVersions(version, low);
    if (open === '[' ? c < 0 : c <= 0) return false;
  }
  if (upper) {
    const c = compareNuGetVersions(version, upper);
    if (close === ']' ? c > 0 : c >= 0) return false;
  }
  return true;
}

/** NuGet's normalized form (what deps.json keys and the packages folder use): 1.0 → 1.0.0, 1.0.0.0 → 1.0.0, labels kept, metadata dropped. */
export function normalizeNuGetVersion(version: string): string {
  const v = parseNuGetVersion(version);
  const [major, minor, patch, revision] = v.parts;
  return `${major}.${minor}.${patch}${revision > 0 ? `.${revision}` : ''}${v.release.length > 0 ? `-${v.release.join('.')}` : ''}`;
}

/** `<id>/<version>/<id>.<version>` in lower case, as the flat container (PackageBaseAddress) and packages folders name a package's files. */
export function flatContainerPath(name: string, version: string): { id: string; version: string; stem: string } {
  const id = name.toLowerCase();
  let v: string;
  try { v = normalizeNuGetVersion(version).toLowerCase(); } catch { throw new DotnetError('DOTNET_REQUEST_INVALID', `${JSON.stringify(version)} is not a NuGet version`); }
  if (!/^[a-z0-9_][a-z0-9._-]*$/.test(id) || id.includes('..')) throw new DotnetError('DOTNET_REQUEST_INVALID', `${JSON.stringify(name)} is not a NuGet package id`);
  return { id, version: v, stem: `${id}/${v}/${id}.${v}` };
}

import type { PackageRecord } from './types.js';
import type { OsInfo } from './types.js';

/** Package URLs (github.com/package-url/purl-spec): type/namespace/name@version?qualifiers. */
export function purl(type: string, namespace: string | undefined, name: string, version: string, qualifiers: Record<string, string | undefined> = {}): string {
  const ns = namespace ? `${namespace.split('/').map(encodeSegment).join('/')}/` : '';
  const q = Object.entries(qualifiers)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
  return `pkg:${type}/${ns}${encodeSegment(name)}@${encodeURIComponent(version)}${q ? `?${q}` : ''}`;
}

function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/%3A/gi, ':');
}

export function purlFor(p: PackageRecord, os: OsInfo | undefined): string {
  const distro = os ? `${os.id}-${os.versionId ?? os.versionCodename ?? ''}`.replace(/-$/, '') : undefined;
  switch (p.ecosystem) {
    case 'debian': return purl('deb', os?.id ?? 'debian', p.name, p.version, { arch: p.architecture, distro });
    case 'alpine': return purl('apk', os?.id ?? 'alpine', p.name, p.version, { arch: p.architecture, distro });
    case 'rpm': {
      const m = /^(?:(\d+):)?(.*)$/.exec(p.version)!;
      return purl('rpm', os?.id ?? 'redhat', p.name, m[2]!, { arch: p.architecture, epoch: m[1], distro });
    }
    case 'pypi': return purl('pypi', undefined, p.name, p.version);
    case 'npm': {
      const slash = p.name.startsWith('@') ? p.name.indexOf('/') : -1;
      return slash > 0 ? purl('npm', p.name.slice(0, slash), p.name.slice(slash + 1), p.version) : purl('npm', undefined, p.name, p.version);
    }
    case 'go': {
      const slash = p.name.lastIndexOf('/');
      return slash > 0 ? purl('golang', p.name.slice(0, slash), p.name.slice(slash + 1), p.version) : purl('golang', undefined, p.name, p.version);
    }
    case 'nuget': return purl('nuget', undefined, p.name, p.version);
  }
}

import type { PackageRecord } from '../types.js';

/** A dist-info or egg-info anywhere under site-packages/dist-packages: top-level installs and copies vendored inside other packages. */
export const pythonMetadataPath = /(^|\/)(site-packages|dist-packages)\/([^/]+\/)*[^/]+\.(dist-info\/METADATA|egg-info\/PKG-INFO|egg-info)$/;
const metadataFile = /\/[^/]+\.(dist-info\/METADATA|egg-info\/PKG-INFO|egg-info|dist-info)$/;

/** Core metadata (METADATA / PKG-INFO): RFC 822 headers up to the first blank line. */
export function readPythonMetadata(text: string, path: string): PackageRecord | undefined {
  let name: string | undefined;
  let version: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') break;
    const m = /^(Name|Version):\s*(.*?)\s*$/i.exec(line);
    if (!m) continue;
    if (m[1]!.toLowerCase() === 'name') name ??= m[2];
    else version ??= m[2];
  }
  if (!name || !version) return undefined;
  const where = pythonPlacement(path);
  const location = where?.sitePackages ?? path.replace(metadataFile, '');
  return {
    ecosystem: 'pypi', class: 'library', name: normalisePythonName(name), version, path, location,
    ...(where?.vendoredIn ? { vendoredIn: where.vendoredIn } : {}),
    ...(isSystemDistPackages(location) ? { distroOwned: true } : {}),
  };
}

/**
 * Where a dist-info/egg-info (or its METADATA/PKG-INFO) sits: its
 * site-packages directory and, when it is nested inside another package's
 * directory (`setuptools/_vendor/wheel-0.45.1.dist-info`), that package.
 * Undefined outside site-packages/dist-packages.
 */
export function pythonPlacement(path: string): { sitePackages: string; vendoredIn?: string } | undefined {
  const m = /^(.*?(?:^|\/)(?:site-packages|dist-packages))(?:\/(.*))?$/.exec(path.replace(/\/+$/, ''));
  if (!m) return undefined;
  const sitePackages = m[1]!.replace(/^\//, '');
  const inside = (m[2] ?? '').replace(/\/(METADATA|PKG-INFO)$/, '').split('/').filter(Boolean);
  // `pkg-1.0.dist-info` alone is a top-level install; anything above it is the directory of the package that ships it.
  const isMetadataDir = /\.(dist-info|egg-info)$/.test(inside[inside.length - 1] ?? '');
  const vendoredIn = isMetadataDir && inside.length > 1 ? inside[0] : undefined;
  return { sitePackages, ...(vendoredIn ? { vendoredIn } : {}) };
}

/** The system Python's own package directory, which only the distribution's packages (python3-*) write to; pip writes to /usr/local. */
export function isSystemDistPackages(location: string): boolean {
  return /^usr\/lib\/python3[^/]*\/dist-packages$/.test(location);
}

/** PEP 503 normalisation: advisories and PyPI use it. */
export function normalisePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

import type { PackageRecord } from '../types.js';

export const pythonMetadataPath = /(^|\/)(site-packages|dist-packages)\/[^/]+\.(dist-info\/METADATA|egg-info\/PKG-INFO|egg-info)$/;

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
  const location = path.replace(/\/[^/]+\.(dist-info\/METADATA|egg-info\/PKG-INFO|egg-info)$/, '');
  return { ecosystem: 'pypi', class: 'library', name: normalisePythonName(name), version, path, location };
}

/** PEP 503 normalisation: advisories and PyPI use it. */
export function normalisePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

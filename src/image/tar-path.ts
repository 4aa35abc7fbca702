import { ImageError } from './errors.js';

/**
 * A tar entry name as a root-relative path: no leading './' or '/', no
 * trailing '/', no '.' or empty components. '..' and NUL are refused: an
 * image's layer has no business naming anything outside its root.
 */
export function normaliseEntryPath(name: string): string {
  if (name.includes('\0')) throw new ImageError('PATH_TRAVERSAL', `layer entry name contains NUL: ${JSON.stringify(name)}`);
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new ImageError('PATH_TRAVERSAL', `layer entry escapes the root: ${JSON.stringify(name)}`);
    parts.push(part);
  }
  return parts.join('/');
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

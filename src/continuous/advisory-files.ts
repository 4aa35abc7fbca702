import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** The files OsvDatabase.load reads under `paths` (directories recursively: *.json and *.zip), with their size and mtime. */
export async function advisoryFiles(paths: readonly string[]): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const visit = async (path: string, top: boolean): Promise<void> => {
    let info;
    try { info = await stat(path); } catch { if (top) files.set(path, 'missing'); return; }
    if (info.isDirectory()) {
      for (const entry of await readdir(path, { withFileTypes: true })) {
        if (entry.isDirectory() || entry.name.endsWith('.json') || entry.name.endsWith('.zip')) await visit(join(path, entry.name), false);
      }
      return;
    }
    files.set(path, `${info.size}:${info.mtimeMs}`);
  };
  for (const path of paths) await visit(path, true);
  return files;
}

/** Cheap: changes when a file is added, removed, rewritten or touched. */
export function fingerprint(files: ReadonlyMap<string, string>): string {
  return [...files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, s]) => `${p}\t${s}`).join('\n');
}

/** Each file's content hash: what the advisory revision is made of (touching a file changes nothing). */
export async function contentHashes(files: ReadonlyMap<string, string>): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const [path, state] of files) {
    if (state === 'missing') continue;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    hashes.set(path, hash.digest('hex'));
  }
  return hashes;
}

/** One short id for a set of content hashes. */
export function revisionOf(hashes: ReadonlyMap<string, string>): string {
  const hash = createHash('sha256');
  for (const [path, h] of [...hashes].sort(([a], [b]) => (a < b ? -1 : 1))) hash.update(`${path}\t${h}\n`);
  return hash.digest('hex').slice(0, 16);
}

/** In words, what changed between two sets of content hashes (for the jobs' reason). */
export function describeChanges(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, limit = 5): string {
  const name = (p: string) => p.split('/').slice(-2).join('/');
  const added = [...after.keys()].filter((p) => !before.has(p)).map(name);
  const removed = [...before.keys()].filter((p) => !after.has(p)).map(name);
  const changed = [...after.keys()].filter((p) => before.has(p) && before.get(p) !== after.get(p)).map(name);
  const part = (label: string, list: string[]) => (list.length === 0 ? [] : [`${label} ${list.slice(0, limit).join(', ')}${list.length > limit ? ` and ${list.length - limit} more` : ''}`]);
  return [...part('added', added), ...part('changed', changed), ...part('removed', removed)].join('; ') || 'no file changed';
}

import { createHash } from 'node:crypto';

/**
 * A mirror for rpm repositories: either a URL prefix mapped to another (the
 * repositories' baseurl, mirrorlist or metalink under `from` are fetched under
 * `to`), or one repository (by id) given a baseurl outright — for
 * repositories that only name a metalink (Fedora) and a plain mirror of the tree.
 */
export type RpmMirror =
  | { readonly from: string; readonly to: string }
  | { readonly repo: string; readonly to: string };

/** Read access to an image's files, root-relative paths. */
export interface RepoFileReader {
  readFile(path: string): Promise<Buffer | undefined>;
  readdir(path: string): string[];
}

export interface RpmRepo {
  readonly id: string;
  readonly baseurls: readonly string[];
  readonly mirrorlist?: string;
  readonly metalink?: string;
  /** Root-relative path of the file it is defined in. */
  readonly file: string;
}

/** What the package manager is told instead of the image's URLs for one repository. */
export interface RepoOverride {
  readonly id: string;
  readonly baseurls: readonly string[];
  /** '' clears it (the baseurl is used instead); undefined leaves it as it is. */
  readonly mirrorlist?: string;
  readonly metalink?: string;
}

/**
 * The image's repositories mapped to mirrors, for one run of its package
 * manager. The image's own repo files are never changed: dnf family tools get
 * `--setopt=<id>.baseurl=...`, zypper a rewritten copy of its repos.d.
 */
export interface RepoMirrorPlan {
  readonly overrides: readonly RepoOverride[];
  /** zypper's repo files with the overrides applied (file name, text). */
  readonly rewrittenFiles: readonly { readonly name: string; readonly text: string }[];
  /** Stable across runs with the same mapping: names the metadata cache, so two mirrors' metadata never mix. */
  readonly key: string;
}

/** Where each family keeps its repository definitions. */
export const repoDirs = { dnf: ['etc/yum.repos.d', 'etc/distro.repos.d'], zypper: ['etc/zypp/repos.d'] } as const;

/** Every `[id]` section of the `.repo` files in `dirs`. */
export async function readRpmRepos(root: RepoFileReader, dirs: readonly string[]): Promise<{ repos: RpmRepo[]; files: { path: string; text: string }[] }> {
  const repos: RpmRepo[] = [];
  const files: { path: string; text: string }[] = [];
  for (const dir of dirs) {
    for (const name of root.readdir(dir).filter((n) => n.endsWith('.repo')).sort()) {
      const path = `${dir}/${name}`;
      const text = (await root.readFile(path))?.toString('utf8');
      if (text === undefined) continue;
      files.push({ path, text });
      for (const section of parseIni(text)) {
        const baseurls = (section.values.get('baseurl') ?? '').split(/[\s,]+/).filter(Boolean);
        const mirrorlist = section.values.get('mirrorlist')?.trim();
        const metalink = section.values.get('metalink')?.trim();
        repos.push({ id: section.id, baseurls, file: path, ...(mirrorlist ? { mirrorlist } : {}), ...(metalink ? { metalink } : {}) });
      }
    }
  }
  return { repos, files };
}

/** The overrides the mirrors call for; repositories no mirror matches are left alone. */
export function planRepoMirrors(repos: readonly RpmRepo[], files: readonly { path: string; text: string }[], mirrors: readonly RpmMirror[]): RepoMirrorPlan {
  const overrides: RepoOverride[] = [];
  for (const repo of repos) {
    const byId = mirrors.find((m): m is { repo: string; to: string } => 'repo' in m && m.repo === repo.id);
    if (byId) {
      overrides.push({ id: repo.id, baseurls: [byId.to], ...(repo.mirrorlist ? { mirrorlist: '' } : {}), ...(repo.metalink ? { metalink: '' } : {}) });
      continue;
    }
    const prefixes = mirrors.filter((m): m is { from: string; to: string } => 'from' in m);
    const baseurls = repo.baseurls.map((u) => mapUrl(u, prefixes));
    const mirrorlist = repo.mirrorlist ? mapUrl(repo.mirrorlist, prefixes) : undefined;
    const metalink = repo.metalink ? mapUrl(repo.metalink, prefixes) : undefined;
    const baseMapped = baseurls.some((u) => u.mapped);
    if (!baseMapped && !mirrorlist?.mapped && !metalink?.mapped) continue;
    overrides.push({
      id: repo.id, baseurls: baseurls.map((u) => u.url),
      // A mirrored baseurl is only used when no unmapped list of mirrors takes precedence over it.
      ...(mirrorlist ? { mirrorlist: mirrorlist.mapped ? mirrorlist.url : baseMapped ? '' : mirrorlist.url } : {}),
      ...(metalink ? { metalink: metalink.mapped ? metalink.url : baseMapped ? '' : metalink.url } : {}),
    });
  }
  const byFile = new Map<string, RepoOverride[]>();
  for (const o of overrides) {
    const file = repos.find((r) => r.id === o.id)!.file;
    byFile.set(file, [...(byFile.get(file) ?? []), o]);
  }
  const rewrittenFiles = files.map((f) => ({ name: f.path.slice(f.path.lastIndexOf('/') + 1), text: rewriteRepoFile(f.text, byFile.get(f.path) ?? []) }));
  const key = createHash('sha256').update(JSON.stringify(overrides)).digest('hex').slice(0, 16);
  return { overrides, rewrittenFiles, key };
}

function mapUrl(url: string, mirrors: readonly { from: string; to: string }[]): { url: string; mapped: boolean } {
  const key = comparable(url);
  let best: { to: string; length: number } | undefined;
  for (const m of mirrors) {
    const from = comparable(m.from);
    if ((key === from || key.startsWith(`${from}/`) || key.startsWith(`${from}?`)) && (!best || from.length > best.length)) best = { to: m.to, length: from.length };
  }
  // The rest keeps its trailing slash: the mapped URL reads as the original did.
  return best ? { url: `${best.to.replace(/\/+$/, '')}${comparable(url, false).slice(best.length)}`, mapped: true } : { url, mapped: false };
}

function comparable(uri: string, trim = true): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?]*)(.*)$/i.exec(uri.trim());
  if (!m) return trim ? uri.trim().replace(/\/+$/, '') : uri.trim();
  return `${m[1]!.toLowerCase()}${trim ? m[2]!.replace(/\/+$/, '') : m[2]!}`;
}

interface IniSection { readonly id: string; readonly values: Map<string, string> }

/** yum/zypper `.repo` files: `[id]` sections of `key=value`, continuation lines indented (multi-line baseurl). */
function parseIni(text: string): IniSection[] {
  const sections: IniSection[] = [];
  let current: IniSection | undefined;
  let last: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^\s*[#;]/.test(line) || line.trim() === '') { last = undefined; continue; }
    const header = /^\[([^\]]+)\]\s*$/.exec(line.trim());
    if (header) { current = { id: header[1]!.trim(), values: new Map() }; sections.push(current); last = undefined; continue; }
    if (!current) continue;
    if (/^\s/.test(line) && last) { current.values.set(last, `${current.values.get(last)} ${line.trim()}`); continue; }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    last = line.slice(0, eq).trim().toLowerCase();
    current.values.set(last, line.slice(eq + 1).trim());
  }
  return sections;
}

/** The file with each overridden section's baseurl/mirrorlist/metalink replaced (continuations dropped), everything else kept. */
function rewriteRepoFile(text: string, overrides: readonly RepoOverride[]): string {
  if (overrides.length === 0) return text;
  const out: string[] = [];
  let current: RepoOverride | undefined;
  let dropping = false;
  for (const line of text.split('\n')) {
    const header = /^\[([^\]]+)\]\s*$/.exec(line.trim());
    if (header) {
      current = overrides.find((o) => o.id === header[1]!.trim());
      dropping = false;
      out.push(line);
      if (current) {
        if (current.baseurls.length > 0) out.push(`baseurl=${current.baseurls.join(' ')}`);
        if (current.mirrorlist) out.push(`mirrorlist=${current.mirrorlist}`);
        if (current.metalink) out.push(`metalink=${current.metalink}`);
      }
      continue;
    }
    if (current) {
      if (dropping && /^\s+\S/.test(line)) continue;
      dropping = /^\s*(baseurl|mirrorlist|metalink)\s*=/i.test(line);
      if (dropping) continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

import { createHash } from 'node:crypto';
import { field, formatParagraph, parseParagraphs, type Paragraph } from './control.js';
import { DebError } from './errors.js';

/** What the executor needs from an image's root: the merged layer view implements it. */
export interface RootView {
  readFile(path: string): Promise<Buffer | undefined>;
  readdir(path: string): string[];
}

export interface Conffile {
  readonly path: string; // absolute, as dpkg records it
  readonly md5: string;
  readonly obsolete: boolean;
}

export interface InstalledPackage {
  readonly name: string;
  readonly architecture: string;
  readonly version: string;
  readonly multiArch?: string;
  readonly status: string; // 'install ok installed', 'hold ok installed', ...
  /** Prefix of the package's files in var/lib/dpkg/info: 'apt' or 'libssl3:amd64'. */
  readonly infoKey: string;
  readonly conffiles: readonly Conffile[];
  readonly paragraph: Paragraph;
}

export const dpkgDir = 'var/lib/dpkg';

/**
 * The dpkg database of an image: `status` (or distroless `status.d/`), file
 * lists, diversions, stat overrides and trigger interests. Read-only: the
 * executor writes new copies into the patch layer.
 */
export class DpkgDatabase {
  private ownersIndex?: Map<string, Set<string>>;

  private constructor(
    private readonly root: RootView,
    readonly layout: 'status' | 'status.d',
    readonly packages: readonly InstalledPackage[],
    /** The raw stanzas of `status` in file order (layout 'status' only). */
    readonly statusParagraphs: readonly Paragraph[],
    readonly diversions: ReadonlyMap<string, { readonly divertTo: string; readonly by: string }>,
    readonly statOverrides: ReadonlyMap<string, { readonly uid: number; readonly gid: number; readonly mode: number }>,
    readonly fileTriggers: readonly { readonly path: string; readonly pkg: string }[],
  ) {}

  static async read(root: RootView, users: UserDatabase): Promise<DpkgDatabase | undefined> {
    const statusBytes = await root.readFile(`${dpkgDir}/status`);
    let layout: 'status' | 'status.d' = 'status';
    let paragraphs: Paragraph[] = [];
    if (statusBytes && statusBytes.length > 0) {
      paragraphs = parseParagraphs(statusBytes.toString('utf8'));
    } else {
      const names = root.readdir(`${dpkgDir}/status.d`).filter((n) => !n.endsWith('.md5sums'));
      if (names.length === 0) return undefined;
      layout = 'status.d';
      for (const name of names) {
        const bytes = await root.readFile(`${dpkgDir}/status.d/${name}`);
        if (bytes) paragraphs.push(...parseParagraphs(bytes.toString('utf8')));
      }
    }

    const packages = paragraphs.flatMap((p) => {
      const pkg = toInstalled(p, layout);
      return pkg ? [pkg] : [];
    });
    const [diversions, statOverrides, fileTriggers] = await Promise.all([
      readDiversions(root),
      readStatOverrides(root, users),
      readFileTriggers(root),
    ]);
    return new DpkgDatabase(root, layout, packages, paragraphs, diversions, statOverrides, fileTriggers);
  }

  get(name: string, architecture?: string): InstalledPackage | undefined {
    return this.packages.find((p) => p.name === name && (!architecture || p.architecture === architecture || p.architecture === 'all'));
  }

  async infoFile(pkg: InstalledPackage, suffix: string): Promise<Buffer | undefined> {
    return this.root.readFile(`${dpkgDir}/info/${pkg.infoKey}.${suffix}`);
  }

  /** Info files a package currently has, by suffix ('list', 'md5sums', 'postinst', ...). */
  infoSuffixes(pkg: InstalledPackage): string[] {
    const prefix = `${pkg.infoKey}.`;
    return this.root.readdir(`${dpkgDir}/info`).filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  }

  async fileList(pkg: InstalledPackage): Promise<string[]> {
    const bytes = await this.infoFile(pkg, 'list');
    return bytes ? splitLines(bytes) : [];
  }

  /** Which packages list a path (absolute, dpkg style). Built once, on first use. */
  async owners(path: string): Promise<ReadonlySet<string>> {
    if (!this.ownersIndex) {
      const index = new Map<string, Set<string>>();
      for (const pkg of this.packages) {
        for (const file of await this.fileList(pkg)) {
          let set = index.get(file);
          if (!set) index.set(file, (set = new Set()));
          set.add(pkg.infoKey);
        }
      }
      this.ownersIndex = index;
    }
    return this.ownersIndex.get(path) ?? new Set();
  }
}

function toInstalled(p: Paragraph, layout: 'status' | 'status.d'): InstalledPackage | undefined {
  const name = field(p, 'Package');
  const version = field(p, 'Version');
  const architecture = field(p, 'Architecture') ?? 'all';
  // distroless status.d stanzas often carry no Status field: presence means installed.
  const status = field(p, 'Status') ?? (layout === 'status.d' ? 'install ok installed' : undefined);
  if (!name || !version || !status) return undefined;
  if (!status.endsWith(' installed')) return undefined;
  const multiArch = field(p, 'Multi-Arch');
  return {
    name,
    version,
    architecture,
    status,
    infoKey: multiArch === 'same' ? `${name}:${architecture}` : name,
    conffiles: parseConffiles(field(p, 'Conffiles')),
    paragraph: p,
    ...(multiArch ? { multiArch } : {}),
  };
}

export function parseConffiles(value: string | undefined): Conffile[] {
  if (!value) return [];
  return value.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    const parts = line.split(/\s+/);
    return { path: parts[0]!, md5: parts[1] ?? '', obsolete: parts.slice(2).includes('obsolete') };
  });
}

async function readDiversions(root: RootView): Promise<Map<string, { divertTo: string; by: string }>> {
  const out = new Map<string, { divertTo: string; by: string }>();
  const bytes = await root.readFile(`${dpkgDir}/diversions`);
  if (!bytes) return out;
  const lines = bytes.toString('utf8').split('\n');
  for (let i = 0; i + 2 < lines.length + 1 && lines[i]; i += 3) {
    const from = lines[i]!;
    const to = lines[i + 1];
    const by = lines[i + 2];
    if (to === undefined || by === undefined) throw new DebError('DPKG_DATABASE_INVALID', 'truncated var/lib/dpkg/diversions');
    out.set(from, { divertTo: to, by });
  }
  return out;
}

/** Resolves user and group names for stat overrides from the image's own passwd/group. */
export interface UserDatabase {
  uid(name: string): number | undefined;
  gid(name: string): number | undefined;
}

export async function readUserDatabase(root: RootView): Promise<UserDatabase> {
  const table = async (path: string) => {
    const map = new Map<string, number>();
    const bytes = await root.readFile(path);
    for (const line of bytes ? splitLines(bytes) : []) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id)) map.set(name, Number(id));
    }
    return map;
  };
  const [users, groups] = await Promise.all([table('etc/passwd'), table('etc/group')]);
  return { uid: (n) => users.get(n), gid: (n) => groups.get(n) };
}

async function readStatOverrides(root: RootView, users: UserDatabase) {
  const out = new Map<string, { uid: number; gid: number; mode: number }>();
  const bytes = await root.readFile(`${dpkgDir}/statoverride`);
  for (const line of bytes ? splitLines(bytes) : []) {
    const [user, group, mode, ...rest] = line.split(' ');
    const path = rest.join(' ');
    if (!user || !group || !mode || !path) continue;
    const uid = user.startsWith('#') ? Number(user.slice(1)) : users.uid(user);
    const gid = group.startsWith('#') ? Number(group.slice(1)) : users.gid(group);
    if (uid === undefined || gid === undefined) {
      throw new DebError('DPKG_DATABASE_INVALID', `statoverride for ${path} names unknown user/group ${user}:${group}`);
    }
    out.set(path, { uid, gid, mode: Number.parseInt(mode, 8) });
  }
  return out;
}

async function readFileTriggers(root: RootView) {
  const bytes = await root.readFile(`${dpkgDir}/triggers/File`);
  return (bytes ? splitLines(bytes) : []).flatMap((line) => {
    const [path, pkg] = line.split(' ');
    return path && pkg ? [{ path, pkg: pkg.replace(/\/noawait$/, '') }] : [];
  });
}

export function splitLines(bytes: Buffer): string[] {
  return bytes.toString('utf8').split('\n').filter((l) => l.length > 0);
}

export function md5Hex(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/**
 * dpkg's own field order for status stanzas (lib/dpkg/parse.c fieldinfos);
 * fields it does not know follow in the order the control file has them.
 */
const dpkgFieldOrder = [
  'Package', 'Essential', 'Protected', 'Status', 'Priority', 'Section', 'Installed-Size', 'Origin',
  'Maintainer', 'Bugs', 'Architecture', 'Multi-Arch', 'Source', 'Version', 'Config-Version', 'Replaces',
  'Provides', 'Depends', 'Pre-Depends', 'Recommends', 'Suggests', 'Breaks', 'Conflicts', 'Enhances',
  'Conffiles', 'Filename', 'Size', 'MD5sum', 'MSDOS-Filename', 'Description', 'Triggers-Pending', 'Triggers-Awaited',
];
const booleanFields = new Set(['essential', 'protected']);
/** Fields dpkg never carries from a control file into its status database. */
const droppedFields = new Set(['status', 'conffiles', 'config-version', 'filename', 'size', 'md5sum', 'msdos-filename', 'triggers-pending', 'triggers-awaited']);

/** The status stanza dpkg writes for a freshly configured package. */
export function installedStanza(control: Paragraph, conffiles: readonly Conffile[], status = 'install ok installed'): Paragraph {
  const byName = new Map<string, [string, string]>();
  const unknown: [string, string][] = [];
  for (const [name, value] of control.fields) {
    const lower = name.toLowerCase();
    if (droppedFields.has(lower)) continue;
    if (booleanFields.has(lower) && value.trim().toLowerCase() !== 'yes') continue;
    const canonical = dpkgFieldOrder.find((f) => f.toLowerCase() === lower);
    if (canonical) byName.set(canonical, [canonical, booleanFields.has(lower) ? 'yes' : value]);
    else unknown.push([name, value]);
  }
  byName.set('Status', ['Status', status]);
  if (conffiles.length > 0) {
    const lines = conffiles.map((c) => ` ${c.path} ${c.md5}${c.obsolete ? ' obsolete' : ''}`);
    byName.set('Conffiles', ['Conffiles', `\n${lines.join('\n')}`]);
  }
  const fields: (readonly [string, string])[] = [];
  for (const name of dpkgFieldOrder) {
    const entry = byName.get(name);
    if (entry) fields.push(entry);
  }
  fields.push(...unknown);
  return { fields };
}

/** dpkg ends every stanza, the last included, with a blank line. */
export function formatStatus(paragraphs: readonly Paragraph[]): string {
  return paragraphs.map((p) => `${formatParagraph(p)}\n`).join('');
}

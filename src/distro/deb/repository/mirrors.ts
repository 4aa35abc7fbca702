/**
 * A mirror of a package archive: requests for anything under `from` go to the
 * same path under `to` instead. Only where bytes are fetched changes: what
 * they are checked against (the image's keyring, InRelease, Packages) does not.
 */
export interface ArchiveMirror {
  /** 'http://deb.debian.org/debian': a URI prefix as the image's sources name it (either scheme matches). */
  readonly from: string;
  /** 'https://mirror.internal/debian'. */
  readonly to: string;
  /** Basic credentials for `to`; never logged, never sent to another origin. */
  readonly credentials?: { readonly username: string; readonly password: string };
}

/** Where one source's files are fetched from. */
export interface MirroredUri {
  readonly uri: string;
  /** The Authorization header for requests to `uri`'s origin. */
  readonly authorization?: string;
  /** The mirror that applies, if any. */
  readonly mirror?: ArchiveMirror;
}

/**
 * The longest `from` that is a path prefix of `uri` (scheme and host case
 * aside) maps it; without one the URI is fetched as it is, without credentials.
 */
export function mirroredUri(uri: string, mirrors: readonly ArchiveMirror[] = []): MirroredUri {
  const key = comparable(uri);
  let best: { mirror: ArchiveMirror; length: number } | undefined;
  for (const mirror of mirrors) {
    const from = comparable(mirror.from);
    if ((key === from || key.startsWith(`${from}/`)) && (!best || from.length > best.length)) best = { mirror, length: from.length };
  }
  if (!best) return { uri };
  const rest = key.slice(best.length);
  const mapped = `${best.mirror.to.replace(/\/+$/, '')}${rest}`;
  const c = best.mirror.credentials;
  return { uri: mapped, mirror: best.mirror, ...(c ? { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` } : {}) };
}

/** 'HTTP://Deb.Debian.org/debian/' -> 'deb.debian.org/debian'. */
function comparable(uri: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)(.*)$/i.exec(uri.trim());
  if (!m) return uri.trim().replace(/\/+$/, '');
  return `${m[1]!.toLowerCase()}${m[2]!.replace(/\/+$/, '')}`;
}

/**
 * The sources as a deb822 file with every mirrored URI replaced, for an apt
 * that runs elsewhere (BuildKit) and is pointed at it for one run; undefined
 * when no mirror applies. Keyrings, suites and architectures stay the image's.
 */
export function mirroredSourcesFile(sources: readonly MirrorableSource[], mirrors: readonly ArchiveMirror[] = []): { text: string; credentials: boolean } | undefined {
  const mapped = sources.map((s) => ({ source: s, via: mirroredUri(s.uri, mirrors) }));
  if (!mapped.some((m) => m.via.mirror)) return undefined;
  const stanzas = mapped.map(({ source, via }) => [
    'Types: deb',
    `URIs: ${via.uri}`,
    `Suites: ${source.suite}`,
    `Components: ${source.components.join(' ')}`,
    ...(source.architectures ? [`Architectures: ${source.architectures.join(' ')}`] : []),
    ...(source.signedBy ? [signedByField(source.signedBy)] : []),
  ].join('\n'));
  return { text: `${stanzas.join('\n\n')}\n`, credentials: mapped.some((m) => m.via.authorization !== undefined) };
}

/** What mirroredSourcesFile needs of an AptSource. */
export interface MirrorableSource {
  readonly uri: string;
  readonly suite: string;
  readonly components: readonly string[];
  readonly signedBy?: readonly string[];
  readonly architectures?: readonly string[];
}

function signedByField(signedBy: readonly string[]): string {
  const inline = signedBy.find((k) => k.includes('BEGIN PGP PUBLIC KEY BLOCK'));
  if (!inline) return `Signed-By: ${signedBy.join(' ')}`;
  // deb822 continuation lines; an empty line is written as ' .'.
  return `Signed-By:\n${inline.split('\n').map((l) => ` ${l.trim() === '' ? '.' : l}`).join('\n')}`;
}

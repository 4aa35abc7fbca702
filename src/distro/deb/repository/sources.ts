import { field, parseParagraphs } from '../control.js';
import { AptError } from './errors.js';

/** Read access to an image's files, root-relative paths ('etc/apt/sources.list'). */
export interface RootReader {
  readFile(path: string): Promise<Buffer | undefined>;
  readdir(path: string): string[];
}

export interface AptSource {
  readonly uri: string;
  readonly suite: string;
  readonly components: readonly string[];
  /** Keyring paths inside the image, or inline armored keys. */
  readonly signedBy?: readonly string[];
  readonly architectures?: readonly string[];
  /** The file it came from, for error messages. */
  readonly origin: string;
}

/** `deb` entries of sources.list, sources.list.d/*.list and deb822 sources.list.d/*.sources. */
export async function readAptSources(root: RootReader): Promise<AptSource[]> {
  const out: AptSource[] = [];
  const main = await root.readFile('etc/apt/sources.list');
  if (main) out.push(...parseOneLineSources(main.toString('utf8'), '/etc/apt/sources.list'));
  for (const name of root.readdir('etc/apt/sources.list.d')) {
    const path = `etc/apt/sources.list.d/${name}`;
    if (name.endsWith('.list')) {
      const text = await root.readFile(path);
      if (text) out.push(...parseOneLineSources(text.toString('utf8'), `/${path}`));
    } else if (name.endsWith('.sources')) {
      const text = await root.readFile(path);
      if (text) out.push(...parseDeb822Sources(text.toString('utf8'), `/${path}`));
    }
  }
  return out;
}

export function parseOneLineSources(text: string, origin: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) throw new AptError('SOURCES_INVALID', `${origin}: cannot parse ${JSON.stringify(line)}`);
    if (m[1] !== 'deb') continue;
    const options = new Map<string, string>();
    for (const opt of (m[2] ?? '').trim().split(/\s+/).filter(Boolean)) {
      const eq = opt.indexOf('=');
      if (eq > 0) options.set(opt.slice(0, eq).toLowerCase(), opt.slice(eq + 1));
    }
    const signedBy = options.get('signed-by')?.split(',').filter(Boolean);
    const arch = options.get('arch')?.split(',').filter(Boolean);
    out.push(source(m[3]!, m[4]!, (m[5] ?? '').split(/\s+/).filter(Boolean), origin, signedBy, arch));
  }
  return out;
}

export function parseDeb822Sources(text: string, origin: string): AptSource[] {
  const out: AptSource[] = [];
  for (const p of parseParagraphs(text, { comments: true })) {
    const types = (field(p, 'Types') ?? '').split(/\s+/).filter(Boolean);
    if (!types.includes('deb') || (field(p, 'Enabled') ?? 'yes').trim().toLowerCase() === 'no') continue;
    const uris = words(field(p, 'URIs'));
    const suites = words(field(p, 'Suites'));
    if (uris.length === 0 || suites.length === 0) throw new AptError('SOURCES_INVALID', `${origin}: a stanza lacks URIs or Suites`);
    const components = words(field(p, 'Components'));
    const signed = field(p, 'Signed-By');
    const signedBy = signed === undefined ? undefined
      : signed.includes('BEGIN PGP PUBLIC KEY BLOCK') ? [inlineKey(signed)] : words(signed.replace(/,/g, ' '));
    const arch = field(p, 'Architectures');
    for (const uri of uris) for (const suite of suites) out.push(source(uri, suite, components, origin, signedBy, arch ? words(arch) : undefined));
  }
  return out;
}

function source(uri: string, suite: string, components: string[], origin: string, signedBy?: string[], architectures?: string[]): AptSource {
  if (suite.endsWith('/')) throw new AptError('SOURCES_INVALID', `${origin}: flat repository ${uri} ${suite} is not supported`);
  if (components.length === 0) throw new AptError('SOURCES_INVALID', `${origin}: ${uri} ${suite} names no component`);
  return {
    uri: uri.replace(/\/+$/, ''), suite, components, origin,
    ...(signedBy && signedBy.length > 0 ? { signedBy } : {}), ...(architectures ? { architectures } : {}),
  };
}

function words(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter(Boolean);
}

/** deb822 inline keys: continuation lines, '.' standing for an empty line. */
function inlineKey(value: string): string {
  return value.split('\n').map((l) => l.trim()).map((l) => (l === '.' ? '' : l)).join('\n').trim();
}

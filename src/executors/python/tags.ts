/**
 * Wheel compatibility tags (PEP 425, PEP 600, PEP 656) in the order pip
 * prefers them: packaging's `sys_tags()` for the image's interpreter,
 * computed from facts read out of the image rather than from a running
 * Python, so any architecture can be targeted from this machine.
 */

/** What decides which wheels an interpreter can load. */
export interface InterpreterTarget {
  readonly implementation: 'cpython' | 'pypy' | 'other';
  readonly version: { readonly major: number; readonly minor: number };
  /** CPython 3.13t+ without the GIL: its own ABI, and no abi3. */
  readonly freeThreaded?: boolean;
  /** Wheel architecture (x86_64, aarch64, armv7l, i686, ppc64le, s390x, ...). */
  readonly arch: string;
  readonly libc: { readonly family: 'glibc' | 'musl'; readonly major: number; readonly minor: number } | { readonly family: 'unknown' };
}

/** An interpreter tag, ABI tag and platform tag, e.g. cp311-cp311-manylinux_2_17_x86_64. */
export type Tag = `${string}-${string}-${string}`;

/** OCI platform → the architecture part of a wheel's platform tag. */
export function wheelArch(platform: { readonly architecture: string; readonly variant?: string }): string | undefined {
  switch (platform.architecture) {
    case 'amd64': return 'x86_64';
    case 'arm64': return 'aarch64';
    case '386': return 'i686';
    case 'arm': return platform.variant === 'v6' || platform.variant === 'v5' ? `armv${platform.variant.slice(1)}l` : 'armv7l';
    case 'ppc64le': return 'ppc64le';
    case 's390x': return 's390x';
    case 'riscv64': return 'riscv64';
    case 'loong64': return 'loongarch64';
    default: return undefined;
  }
}

// packaging._manylinux._LEGACY_MANYLINUX_MAP
const legacyManylinux = new Map([['2.17', 'manylinux2014'], ['2.12', 'manylinux2010'], ['2.5', 'manylinux1']]);

/** packaging's `_linux_platforms()`: manylinux (newest glibc first, legacy aliases after their PEP 600 names), musllinux, linux_<arch>. */
export function linuxPlatformTags(target: Pick<InterpreterTarget, 'arch' | 'libc'>): string[] {
  const { arch, libc } = target;
  const out: string[] = [];
  if (libc.family === 'glibc') {
    // Oldest glibc tagged: 2.17 everywhere, 2.5 on x86 (manylinux1).
    const tooOldMinor = arch === 'x86_64' || arch === 'i686' ? 4 : 16;
    if (libc.major === 2) {
      for (let minor = libc.minor; minor > tooOldMinor; minor--) {
        out.push(`manylinux_2_${minor}_${arch}`);
        const legacy = legacyManylinux.get(`2.${minor}`);
        if (legacy) out.push(`${legacy}_${arch}`);
      }
    }
  } else if (libc.family === 'musl') {
    for (let minor = libc.minor; minor >= 0; minor--) out.push(`musllinux_${libc.major}_${minor}_${arch}`);
  }
  out.push(`linux_${arch}`);
  return out;
}

/** The tags an interpreter supports, most preferred first (packaging.tags.sys_tags). */
export function supportedTags(target: InterpreterTarget): Tag[] {
  const platforms = linuxPlatformTags(target);
  const { major, minor } = target.version;
  const nodot = (a: number, b: number) => `${a}${b}`;
  const tags: Tag[] = [];
  let interpreter: string | undefined;
  if (target.implementation === 'cpython') {
    interpreter = `cp${nodot(major, minor)}`;
    const abi = `${interpreter}${target.freeThreaded ? 't' : ''}`;
    for (const p of platforms) tags.push(`${interpreter}-${abi}-${p}`);
    const abi3 = major === 3 && minor >= 2 && !target.freeThreaded;
    if (abi3) for (const p of platforms) tags.push(`${interpreter}-abi3-${p}`);
    for (const p of platforms) tags.push(`${interpreter}-none-${p}`);
    if (abi3) for (let m = minor - 1; m > 1; m--) for (const p of platforms) tags.push(`cp${nodot(major, m)}-abi3-${p}`);
  } else if (target.implementation === 'pypy') {
    // PyPy's own ABI (pypy39_pp73) is not knowable from the image's files: no binary wheels, only 'none' ones.
    interpreter = `pp${nodot(major, minor)}`;
  }
  // packaging.tags.compatible_tags
  const pyRange = [`py${nodot(major, minor)}`, `py${major}`];
  for (let m = minor - 1; m >= 0; m--) pyRange.push(`py${nodot(major, m)}`);
  for (const py of pyRange) for (const p of platforms) tags.push(`${py}-none-${p}`);
  if (interpreter) tags.push(`${interpreter}-none-any`);
  for (const py of pyRange) tags.push(`${py}-none-any`);
  return tags;
}

export interface WheelName {
  readonly distribution: string;
  readonly version: string;
  readonly build?: { readonly number: number; readonly rest: string };
  /** Every tag the (possibly compressed) tag set expands to. */
  readonly tags: readonly Tag[];
}

/** `{distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, compressed tag sets expanded; undefined if not a wheel name. */
export function parseWheelName(filename: string): WheelName | undefined {
  if (!filename.endsWith('.whl')) return undefined;
  const parts = filename.slice(0, -4).split('-');
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  const [distribution, version] = parts as [string, string];
  let build: WheelName['build'];
  if (parts.length === 6) {
    const m = /^(\d+)(.*)$/.exec(parts[2]!);
    if (!m) return undefined;
    build = { number: Number(m[1]), rest: m[2]! };
  }
  const [py, abi, plat] = parts.slice(-3) as [string, string, string];
  if (!distribution || !version || !py || !abi || !plat) return undefined;
  const tags: Tag[] = [];
  for (const i of py.split('.')) for (const a of abi.split('.')) for (const p of plat.split('.')) tags.push(`${i.toLowerCase()}-${a.toLowerCase()}-${p.toLowerCase()}`);
  return { distribution, version, ...(build ? { build } : {}), tags };
}

export interface ReleaseFile {
  readonly filename: string;
  readonly url: string;
  readonly sha256?: string;
  readonly requiresPython?: string;
  readonly yanked: boolean;
  readonly size?: number;
}

/**
 * The wheel pip would pick among `files` for `tags`: not yanked before
 * yanked, then the most preferred tag any of its tags matches, then the
 * highest build number (pip's candidate sort key, for one version).
 */
export function selectWheel<F extends ReleaseFile>(files: readonly F[], tags: readonly Tag[]): { file: F; tag: Tag } | undefined {
  const rank = new Map(tags.map((t, i) => [t, i]));
  let best: { file: F; tag: Tag; key: [number, number, number, string] } | undefined;
  for (const file of files) {
    const name = parseWheelName(file.filename);
    if (!name) continue;
    let top: { tag: Tag; index: number } | undefined;
    for (const t of name.tags) {
      const index = rank.get(t);
      if (index !== undefined && (!top || index < top.index)) top = { tag: t, index };
    }
    if (!top) continue;
    // Bigger is better in every position.
    const key: [number, number, number, string] = [file.yanked ? -1 : 0, -top.index, name.build?.number ?? -1, name.build?.rest ?? ''];
    if (!best || compareKeys(key, best.key) > 0) best = { file, tag: top.tag, key };
  }
  return best && { file: best.file, tag: best.tag };
}

function compareKeys(a: [number, number, number, string], b: [number, number, number, string]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
}

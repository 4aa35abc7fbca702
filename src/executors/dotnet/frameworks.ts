/**
 * Target frameworks as NuGet names them (lib/ folder names such as
 * `netstandard2.0`, `net6.0`, `net45`; nuspec groups such as `.NETStandard2.0`;
 * deps.json targets such as `.NETCoreApp,Version=v8.0`), and NuGet's choice of
 * the nearest compatible one for a .NET (Core) application.
 */
export interface Framework {
  readonly family: '.NETCoreApp' | '.NETStandard' | '.NETFramework';
  /** Numeric parts, as written: [8, 0], [4, 7, 2]. */
  readonly version: readonly number[];
  /** `net6.0-windows`: an OS-specific framework. */
  readonly platform?: string;
}

const longName = /^\.?(NETCoreApp|NETStandard|NETFramework)(?:,Version=v?|)(\d+(?:\.\d+){0,3})$/i;
const families = { netcoreapp: '.NETCoreApp', netstandard: '.NETStandard', netframework: '.NETFramework' } as const;

/** A framework name, or undefined for one patchd does not match against (portable profiles, UWP, Xamarin, no version). */
export function parseFramework(name: string): Framework | undefined {
  const long = longName.exec(name.trim());
  if (long) return { family: families[long[1]!.toLowerCase() as keyof typeof families], version: numbers(long[2]!) };
  const short = name.trim().toLowerCase();
  let m = /^netstandard(\d+(?:\.\d+){0,3})$/.exec(short);
  if (m) return { family: '.NETStandard', version: numbers(m[1]!) };
  m = /^netcoreapp(\d+(?:\.\d+){0,3})$/.exec(short);
  if (m) return { family: '.NETCoreApp', version: numbers(m[1]!) };
  // net5.0 and later are .NET (Core); an OS suffix makes them platform-specific.
  m = /^net(\d+\.\d+(?:\.\d+){0,2})(?:-([a-z]+)(?:\d+(?:\.\d+)*)?)?$/.exec(short);
  if (m && numbers(m[1]!)[0]! >= 5) return { family: '.NETCoreApp', version: numbers(m[1]!), ...(m[2] ? { platform: m[2] } : {}) };
  // net45, net472, net20: .NET Framework, one digit per part.
  m = /^net(\d)(\d)(\d?)$/.exec(short);
  if (m) return { family: '.NETFramework', version: [m[1], m[2], m[3]].filter((d) => d !== '').map(Number) };
  return undefined;
}

function numbers(text: string): number[] {
  return text.split('.').map(Number);
}

/** -1, 0, 1 by version, missing parts as 0. */
export function compareFrameworkVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length, 4); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** The highest .NET Standard a .NET (Core) version implements. */
function standardFor(app: Framework): readonly number[] {
  if (compareFrameworkVersions(app.version, [3, 0]) >= 0) return [2, 1];
  if (compareFrameworkVersions(app.version, [2, 0]) >= 0) return [2, 0];
  return [1, 6];
}

// The SDK's default AssetTargetFallback for .NET Core 2.0 and later (NU1701 when used), in its order.
const assetTargetFallback: readonly (readonly number[])[] = [[4, 6, 1], [4, 6, 2], [4, 7], [4, 7, 1], [4, 7, 2], [4, 8], [4, 8, 1]];

/**
 * NuGet's nearest framework among `candidates` for a .NET (Core) app: the
 * highest .NETCoreApp not newer than the app, else the highest .NET Standard
 * it implements, else (AssetTargetFallback) a .NET Framework one, which
 * `fallback` marks. Undefined when none is compatible.
 */
export function nearestFramework<T>(app: Framework, candidates: readonly T[], frameworkOf: (c: T) => Framework | undefined): { readonly pick: T; readonly fallback: boolean } | undefined {
  const parsed = candidates.flatMap((c) => {
    const f = frameworkOf(c);
    return f ? [{ c, f }] : [];
  });
  const highest = (list: typeof parsed) => list.sort((a, b) => compareFrameworkVersions(b.f.version, a.f.version))[0];
  const core = highest(parsed.filter(({ f }) => f.family === '.NETCoreApp' && !f.platform && compareFrameworkVersions(f.version, app.version) <= 0));
  if (core) return { pick: core.c, fallback: false };
  const max = standardFor(app);
  const standard = highest(parsed.filter(({ f }) => f.family === '.NETStandard' && compareFrameworkVersions(f.version, max) <= 0));
  if (standard) return { pick: standard.c, fallback: false };
  if (compareFrameworkVersions(app.version, [2, 0]) < 0) return undefined;
  for (const fallback of assetTargetFallback) {
    const framework = highest(parsed.filter(({ f }) => f.family === '.NETFramework' && compareFrameworkVersions(f.version, fallback) <= 0));
    if (framework) return { pick: framework.c, fallback: true };
  }
  return undefined;
}

/**
 * The runtime identifiers NuGet tries for a RID-specific app, most specific
 * first (the portable RID graph of .NET 8 and later). Undefined for a RID
 * outside it (old distro-versioned RIDs such as `alpine.3.18-x64`).
 */
export function ridFallbacks(rid: string): readonly string[] | undefined {
  const arch = '(x64|x86|arm|arm64|armel|armv6|riscv64|s390x|ppc64le|loongarch64|mips64)';
  let m = new RegExp(`^linux-(musl|bionic)-${arch}$`).exec(rid);
  if (m) return [rid, `linux-${m[1]}`, `linux-${m[2]}`, 'linux', 'unix', 'any'];
  m = new RegExp(`^(linux|osx|freebsd|illumos|solaris)-${arch}$`).exec(rid);
  if (m) return [rid, m[1]!, 'unix', 'any'];
  m = new RegExp(`^win-${arch}$`).exec(rid);
  if (m) return [rid, 'win', 'any'];
  if (rid === 'linux-musl' || rid === 'linux-bionic') return [rid, 'linux', 'unix', 'any'];
  if (['linux', 'osx', 'freebsd'].includes(rid)) return [rid, 'unix', 'any'];
  if (rid === 'win') return ['win', 'any'];
  if (rid === 'unix') return ['unix', 'any'];
  if (rid === 'any') return ['any'];
  return undefined;
}

import { codedError, UsageError, type ErrorCodes } from '../lib/errors.js';

// Copa v0.14's `copa patch` flags that patchd takes with Copa's meaning, and
// the ones it refuses (each with the reason), so no Copa flag is accepted and
// then silently ignored. The README's Copa table is the user-facing side.

export const copaCodes = { PATCH_TIMEOUT: 'unavailable' } as const satisfies ErrorCodes;
export class CopaFlagError extends codedError(copaCodes) {}

/** parseArgs options for Copa flags patchd refuses: parsed only so that the refusal can say why. */
export const refusedCopaOptions = {
  config: { type: 'string' },
  loader: { type: 'string', short: 'l' },
  scanner: { type: 'string', short: 's' },
  'eol-api-url': { type: 'string' },
  'exit-on-eol': { type: 'boolean' },
  'force-compression': { type: 'boolean' },
  'go-vcs-url': { type: 'string' },
} as const;

/** Throws the usage error for the first refused Copa flag present. */
export function refuseCopaFlags(values: { readonly [K in keyof typeof refusedCopaOptions]?: string | boolean }): void {
  if (values.config !== undefined) throw new UsageError('--config (Copa\'s bulk patching) is not supported: patch images one at a time, or run `patchd serve --config FILE`, which patches every push to the registries it is given');
  if (values.loader !== undefined) throw new UsageError('-l/--loader is not supported: patchd loads nothing into a Docker or Podman daemon; it pushes the result to the registry, or writes it with --oci-dir DIR (then `skopeo copy oci:DIR:TAG docker-daemon:...`)');
  if (values.scanner !== undefined && values.scanner !== 'trivy') throw new UsageError(`-s/--scanner ${values.scanner} is not supported: patchd reads Trivy JSON and Harbor reports itself (-r) and runs no copa-<scanner> plugins`);
  if (values['eol-api-url'] !== undefined || values['exit-on-eol'] !== undefined) throw new UsageError('--eol-api-url/--exit-on-eol are not supported: patchd does not ask endoflife.date whether the image\'s OS is end of life');
  if (values['force-compression'] !== undefined) throw new UsageError('--force-compression is not supported: patchd never re-encodes the original\'s layers (their digests stay, so registries share them); only the patch layer it writes follows --compression');
  if (values['go-vcs-url'] !== undefined) throw new UsageError('--go-vcs-url is not supported: patchd rebuilds Go binaries from the module proxy\'s source of the version each binary records, never from a VCS checkout');
}

const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration (Copa's --timeout): `300ms`, `1.5h`, `2h45m`; returns milliseconds. */
export function parseGoDuration(text: string, flag = '--timeout'): number {
  const invalid = () => new UsageError(`${flag} takes a duration such as 5m, 90s or 1h30m (got ${JSON.stringify(text)})`);
  if (text === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const match = part.exec(text);
    if (!match) throw invalid();
    total += Number(match[1]) * units[match[2]!]!;
    at = part.lastIndex;
  }
  if (at === 0) throw invalid();
  return total;
}

export const progressModes = ['auto', 'plain', 'tty', 'quiet', 'rawjson'] as const;
export type ProgressMode = (typeof progressModes)[number];

export function parseProgressMode(value: string): ProgressMode {
  if ((progressModes as readonly string[]).includes(value)) return value as ProgressMode;
  throw new UsageError(`--progress takes ${progressModes.join(', ')} (got ${JSON.stringify(value)})`);
}

/** Copa's --platform: a comma-separated list, repeatable; `os/arch[/variant]` each. */
export function parsePlatforms(values: readonly string[] | undefined): string[] | undefined {
  if (!values || values.length === 0) return undefined;
  const platforms = values.flatMap((v) => v.split(',')).map((p) => p.trim()).filter(Boolean);
  for (const p of platforms) {
    if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(p)) throw new UsageError(`--platform takes os/arch[/variant], e.g. linux/amd64 or linux/arm/v7 (got ${JSON.stringify(p)})`);
  }
  return [...new Set(platforms)];
}

/**
 * BuildKit addresses patchd dials itself: unix:// and tcp://. Copa's
 * connection helpers (docker-container://, kube-pod://, ...) exec a client
 * tool into a container, which patchd does not do.
 */
export function checkBuildkitAddress(address: string): void {
  if (address.startsWith('unix://') || address.startsWith('tcp://')) return;
  const scheme = /^([a-z-]+):\/\//.exec(address)?.[1];
  throw new UsageError(scheme
    ? `-a/--addr ${address}: ${scheme}:// (a BuildKit connection helper) is not supported: give buildkitd's socket as unix:///path or its TCP listener as tcp://host:port`
    : `-a/--addr takes unix:///path or tcp://host:port (got ${JSON.stringify(address)})`);
}

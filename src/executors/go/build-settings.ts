import { GoError } from './errors.js';

/** How a binary was built, as `go build` must be told again: its flags and its environment. */
export interface GoBuildArguments {
  /** `-buildmode=exe`, `-ldflags=...`, `-tags=...`, `-trimpath`: each one argv element. */
  readonly flags: readonly string[];
  /** `CGO_ENABLED=0`, `GOOS=linux`, `GOARCH=arm`, `GOARM=7`, ... */
  readonly env: readonly string[];
  /** Recorded settings that are derived or do not change the build, left out on purpose. */
  readonly ignored: readonly string[];
}

/** Flags whose value is passed on as recorded (after unquoting). */
const valueFlags = new Set(['-ldflags', '-gcflags', '-asmflags', '-tags']);
/** Boolean flags recorded as `=true`. */
const boolFlags = new Set(['-trimpath', '-race', '-msan', '-asan']);
/** Build environment the go command records (cmd/go/internal/load: the target's GO* and cgo's flags). */
const platformEnv = new Set(['GOOS', 'GOARCH', 'GOARM', 'GOARM64', 'GOAMD64', 'GO386', 'GOMIPS', 'GOMIPS64', 'GOPPC64', 'GORISCV64', 'GOWASM', 'GOEXPERIMENT', 'GOFIPS140']);
const cgoEnv = new Set(['CGO_ENABLED', 'CGO_CFLAGS', 'CGO_CPPFLAGS', 'CGO_CXXFLAGS', 'CGO_LDFLAGS', 'CGO_FFLAGS']);
/**
 * Recorded but not something to pass: the compiler (checked), the VCS
 * stamp, the GODEBUG default go.mod implies, and the PGO profile (`-pgo=auto`,
 * the default, finds the same default.pgo in the module zip again).
 */
const derived = new Set(['-compiler', 'DefaultGODEBUG', '-pgo', 'vcs', 'vcs.revision', 'vcs.time', 'vcs.modified']);
const executableModes = new Set(['exe', 'pie', 'default']);

/**
 * The `build` lines of a binary's build info (runtime/debug.BuildSetting)
 * turned back into `go build` arguments. Values arrive as the reader keeps
 * them: quoted with Go's strconv.Quote when they hold spaces or quotes.
 * Anything patchd cannot reproduce faithfully is refused, not guessed.
 */
export function buildArguments(settings: ReadonlyMap<string, string>): GoBuildArguments {
  const flags: string[] = [];
  const env: string[] = [];
  const ignored: string[] = [];
  for (const [rawKey, rawValue] of [...settings].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const key = unquoteGo(rawKey);
    const value = unquoteGo(rawValue);
    // eslint-disable-next-line no-control-regex
    if (/[\x00\n\r]/.test(value)) throw new GoError('GO_REQUEST_INVALID', `refusing build setting ${key} with a line break or NUL in its value`);
    if (key === '-compiler') {
      if (value !== 'gc') throw new GoError('GO_BUILD_UNSUPPORTED', `built with -compiler=${value}: patchd rebuilds with the gc toolchain only`);
      ignored.push(key);
    } else if (derived.has(key) || key.startsWith('vcs.')) {
      ignored.push(key);
    } else if (key === '-buildmode') {
      if (!executableModes.has(value)) throw new GoError('GO_BUILD_UNSUPPORTED', `built with -buildmode=${value}: not an executable patchd can rebuild and replace`);
      flags.push(`-buildmode=${value}`);
    } else if (boolFlags.has(key)) {
      if (value === 'true') flags.push(key);
      else if (value !== 'false') throw new GoError('GO_REQUEST_INVALID', `refusing ${key}=${JSON.stringify(value)}`);
    } else if (valueFlags.has(key)) {
      if (key === '-tags' && !/^[A-Za-z0-9_.,-]*$/.test(value)) throw new GoError('GO_REQUEST_INVALID', `refusing -tags=${JSON.stringify(value)}`);
      // Naming another linker or compiler would run a program of the image's choosing next to the shared module cache.
      if (/(^|[\s'"])-?-(extld|toolexec)\b/.test(value)) throw new GoError('GO_BUILD_UNSUPPORTED', `built with ${key} naming an external program (${value}): not rebuilt`);
      flags.push(`${key}=${value}`);
    } else if (platformEnv.has(key)) {
      if (!/^[A-Za-z0-9_.,]*$/.test(value)) throw new GoError('GO_REQUEST_INVALID', `refusing ${key}=${JSON.stringify(value)}`);
      env.push(`${key}=${value}`);
    } else if (cgoEnv.has(key)) {
      if (key === 'CGO_ENABLED' ? !/^[01]$/.test(value) : !/^[A-Za-z0-9 _=.,/+:-]*$/.test(value)) throw new GoError('GO_REQUEST_INVALID', `refusing ${key}=${JSON.stringify(value)}`);
      env.push(`${key}=${value}`);
    } else {
      throw new GoError('GO_BUILD_UNSUPPORTED', `the binary records build setting ${key}=${value}, which patchd does not know how to reproduce`);
    }
  }
  // Go records CGO_ENABLED whenever cgo was considered; without it the binary came from a build with cgo unavailable.
  if (!env.some((e) => e.startsWith('CGO_ENABLED='))) env.push('CGO_ENABLED=0');
  return { flags, env, ignored };
}

/**
 * The toolchain a binary was built with, as GOTOOLCHAIN names it
 * (`go1.22.5`): releases only, since the module proxy serves those
 * (golang.org/toolchain) and a `devel` or experiment build cannot be had again.
 */
export function toolchainOf(goVersion: string): string {
  const m = /^go(1\.(\d+)(?:\.(\d+))?(?:(rc|beta)\d+)?)$/.exec(goVersion);
  if (!m) throw new GoError('GO_BUILD_UNSUPPORTED', `built with ${JSON.stringify(goVersion)}, not a Go release a toolchain can be fetched for`);
  return `go${m[1]}`;
}

/** GOTOOLCHAIN for a stdlib version as the inventory writes it (`v1.22.5`). */
export function toolchainForStdlib(version: string): string {
  return toolchainOf(`go${version.replace(/^v/, '')}`);
}

/** Go's strconv.Unquote for the double-quoted form strconv.Quote writes; anything else is returned as it is. */
export function unquoteGo(text: string): string {
  if (text.length < 2 || !text.startsWith('"') || !text.endsWith('"')) return text;
  const body = text.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') { out += c; continue; }
    const n = body[++i];
    const hex = (len: number) => {
      const digits = body.slice(i + 1, i + 1 + len);
      if (!new RegExp(`^[0-9A-Fa-f]{${len}}$`).test(digits)) throw new GoError('GO_REQUEST_INVALID', `bad escape in build setting ${text}`);
      i += len;
      return parseInt(digits, 16);
    };
    switch (n) {
      case 'a': out += '\x07'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case "'": out += "'"; break;
      case 'x': out += String.fromCharCode(hex(2)); break;
      case 'u': out += String.fromCodePoint(hex(4)); break;
      case 'U': out += String.fromCodePoint(hex(8)); break;
      default: {
        const oct = body.slice(i, i + 3);
        if (!/^[0-7]{3}$/.test(oct)) throw new GoError('GO_REQUEST_INVALID', `bad escape in build setting ${text}`);
        out += String.fromCharCode(parseInt(oct, 8));
        i += 2;
      }
    }
  }
  return out;
}

import { BuildkitError } from '../errors.js';
import type { LlbState } from '../llb.js';

export interface DotnetPackagePin {
  /** NuGet id as deps.json spells it. */
  readonly name: string;
  readonly from: string;
  readonly to: string;
  /** The lower-case normalized version in the flat container's file names. */
  readonly fileVersion: string;
}

export interface DotnetSdkUpdate {
  /** Image path of the app's deps.json, symlinks already resolved against the image. */
  readonly depsPath: string;
  /** A NuGet flat container (PackageBaseAddress), without credentials. */
  readonly indexUrl: string;
  readonly packages: readonly DotnetPackagePin[];
  /** patchd's container program: flat `.mjs` file names → contents, entry among them. */
  readonly program: ReadonlyMap<string, Buffer>;
  readonly entry: string;
}

/**
 * Runs in a .NET SDK tooling image (it needs `dotnet`, `curl` and `node`)
 * with the target image mounted at /target. For each package, curl fetches
 * `<id>.<version>.nupkg` from the flat container and its `.nupkg.sha512`
 * when the source publishes one; without it, the SDK's `dotnet nuget verify`
 * must accept the package's signature, or nothing is installed. Then patchd's
 * own program (the same update the in-process executor runs) checks the
 * hashes, replaces the app's DLLs that the new version ships and rewrites its
 * deps.json, all under /target. Nothing untrusted reaches a shell: every
 * value is validated and passed as an argument.
 */
const script = `#!/bin/sh
set -eu
index=$1; deps=$2; entry=$3; shift 3
dir=/tmp/patchd-nupkgs
rm -rf "$dir"; mkdir -p "$dir"
n=0
for arg in "$@"; do
  n=$((n + 1))
  case $((n % 4)) in
    1) id=$(printf '%s' "$arg" | tr 'A-Z' 'a-z') ;;
    0)
      v=$arg
      f="$dir/$id.$v.nupkg"
      curl -fsSL --retry 3 --proto '=http,https' -o "$f" "$index/$id/$v/$id.$v.nupkg"
      if ! curl -fsSL --retry 3 --proto '=http,https' -o "$f.sha512" "$index/$id/$v/$id.$v.nupkg.sha512"; then
        rm -f "$f.sha512"
        if dotnet nuget verify --all "$f"; then : > "$f.signed"
        else echo "patchd: $id $v: the source publishes no .nupkg.sha512 and the package signature does not verify" >&2; exit 1
        fi
      fi
      ;;
  esac
done
exec node "/tmp/$entry" /target "$deps" "$dir" "$@"
`;

const env = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/share/dotnet',
  'HOME=/tmp',
  'DOTNET_CLI_TELEMETRY_OPTOUT=1',
  'DOTNET_NOLOGO=1',
  'DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1',
  'NUGET_PACKAGES=/tmp/patchd-nuget-packages',
];

export function dotnetSdkUpdate(target: LlbState, tooling: LlbState, update: DotnetSdkUpdate): LlbState {
  const refuse = (what: string, value: string): never => { throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${what} ${JSON.stringify(value)} to the .NET step`); };
  if (!/^[A-Za-z0-9._@+-]+(\/[A-Za-z0-9._@+-]+)*\.deps\.json$/.test(update.depsPath) || update.depsPath.split('/').some((p) => p === '.' || p === '..')) refuse('deps.json path', update.depsPath);
  let url: URL | undefined;
  try { url = new URL(update.indexUrl); } catch { url = undefined; }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash || !/^https?:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~%+-]+)*\/?$/.test(update.indexUrl)) refuse('NuGet source', update.indexUrl);
  if (update.packages.length === 0) throw new BuildkitError('BUILD_REQUEST_INVALID', 'no .NET packages to update');
  for (const p of update.packages) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(p.name)) refuse('package id', p.name);
    for (const v of [p.from, p.to]) if (!/^[0-9][0-9A-Za-z.+-]*$/.test(v)) refuse('version', v);
    if (!/^[0-9][0-9a-z.-]*$/.test(p.fileVersion)) refuse('version', p.fileVersion);
  }
  if (!update.program.has(update.entry)) throw new BuildkitError('BUILD_REQUEST_INVALID', `the .NET step's program has no ${update.entry}`);
  let tools = tooling.mkfile('/tmp/patchd-dotnet-update.sh', 0o755, script, '.NET update script');
  for (const [name, data] of update.program) {
    if (!/^[A-Za-z0-9._-]+\.mjs$/.test(name)) refuse('program file', name);
    tools = tools.mkfile(`/tmp/${name}`, 0o644, data);
  }
  const index = update.indexUrl.replace(/\/+$/, '');
  const run = tools.run({
    args: ['/bin/sh', '/tmp/patchd-dotnet-update.sh', index, update.depsPath, update.entry, ...update.packages.flatMap((p) => [p.name, p.from, p.to, p.fileVersion])],
    env,
    mounts: [{ kind: 'bind', dest: '/target', state: target }],
    name: `.NET: ${update.packages.map((p) => `${p.name} ${p.from} -> ${p.to}`).join(', ')} in /${update.depsPath}`,
  });
  return run.mountOutput('/target');
}

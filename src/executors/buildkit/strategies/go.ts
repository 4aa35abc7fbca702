import { BuildkitError } from '../errors.js';
import type { LlbState } from '../llb.js';

/**
 * Go through a tooling image that carries a Go toolchain, with the target
 * image mounted at /target: go.mod requirements moved in their module roots,
 * and binaries rebuilt from the module proxy's zip of the exact version they
 * were built from. The module and build caches live in a cache mount, so
 * downloads are shared across jobs and never reach the patch layer.
 */

/** One module root's planned requirements: `go get m@v ...` there. */
export interface GoModuleUpdate {
  /** Root-relative directory holding go.mod ('.' for the root). */
  readonly root: string;
  /** `module@version`, checked. */
  readonly requirements: readonly string[];
}

/** One binary rebuilt: its source, how it was built, and the requirements moved first. */
export interface GoRebuild {
  /** Root-relative path of the binary, symlinks resolved. */
  readonly path: string;
  readonly module: string;
  readonly version: string;
  /** The h1: sum of the module zip, as the binary's build info records it. */
  readonly sum: string;
  /** The main package's import path (build info `path`). */
  readonly package: string;
  /** GOTOOLCHAIN: the recorded one (`go1.22.5`), or the one the plan chose for stdlib fixes. */
  readonly toolchain: string;
  readonly flags: readonly string[];
  readonly env: readonly string[];
  readonly requirements: readonly string[];
}

export interface GoEnvironment {
  /** GOPROXY: one proxy URL, no credentials in it. */
  readonly proxy: string;
  /** GOTOOLCHAIN for go.mod updates: `local` unless a toolchain patch level lets go switch. */
  readonly modToolchain: 'local' | 'auto';
}

const cacheRoot = '/var/cache/patchd-go';
const goCache = { kind: 'cache', dest: cacheRoot, id: 'patchd-go-cache', sharing: 'shared' } as const;

const modUpdateScript = `#!/bin/sh
# patchd-go-mod-update ROOT MODULE@VERSION...
# In /target/ROOT: go get the planned requirements, then fetch what the build
# list needs (their go.sum lines) and refresh vendor/ and go.work.sum where
# the image has them. Nothing is tidied: only what the requirements pull in moves.
set -eu
root=$1; shift
cd "/target/$root"
case "$(pwd -P)/" in /target/*) ;; *) echo "patchd: /$root leaves the image" >&2; exit 2 ;; esac
if [ ! -f go.mod ] || [ -L go.mod ]; then echo "patchd: /$root/go.mod is not a regular file" >&2; exit 2; fi
GOWORK=off go get "$@"
GOWORK=off go mod download
if [ -f vendor/modules.txt ]; then GOWORK=off go mod vendor; echo "patchd: /$root/vendor refreshed"; fi
work=$(go env GOWORK)
case "$work" in /target/*) go mod download; echo "patchd: workspace \${work#/target} summed" ;; esac
for r in "$@"; do echo "patchd: /$root/go.mod now requires $(GOWORK=off go list -m -f '{{.Path}} {{.Version}}' "\${r%@*}")"; done
`;

const rebuildScript = `#!/bin/sh
# patchd-go-rebuild DEST MODULE VERSION SUM PACKAGE TOOLCHAIN REQUIREMENTS N ENV... [go build flags...]
# Rebuilds the binary at /target/DEST from MODULE@VERSION as the module proxy
# serves it (its zip must hash to SUM, the binary's own record of its source),
# with REQUIREMENTS (space-separated module@version, checked; '-' for none)
# moved first and the N recorded VAR=value settings in its environment, and
# writes the result over the old file in place (mode, owner kept).
set -euf
dest=/target/$1 module=$2 version=$3 sum=$4 package=$5 toolchain=$6 requirements=$7 n=$8
shift 8
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done
[ "$requirements" != - ] || requirements=
if [ ! -f "$dest" ] || [ -L "$dest" ]; then echo "patchd: /$1 is not a regular file in the image" >&2; exit 2; fi
case "$(cd "$(dirname "$dest")" && pwd -P)/" in /target/*) ;; *) echo "patchd: /$1 leaves the image" >&2; exit 2 ;; esac
if [ "$(GOTOOLCHAIN=local go env GOVERSION)" = "$toolchain" ]; then GOTOOLCHAIN=local; else GOTOOLCHAIN=$toolchain; fi
export GOTOOLCHAIN
work=$(mktemp -d /tmp/patchd-go-rebuild.XXXXXX)
cd "$work"
info=$(go mod download -json "$module@$version")
dir=$(printf '%s\\n' "$info" | sed -n 's/^\t"Dir": "\\(.*\\)",$/\\1/p')
got=$(printf '%s\\n' "$info" | sed -n 's/^\t"Sum": "\\(.*\\)",$/\\1/p')
if [ "$got" != "$sum" ]; then echo "patchd: $module@$version from the proxy hashes to $got, but /$1 was built from $sum" >&2; exit 3; fi
echo "patchd: verified $module@$version $sum: the proxy's zip is the source /$1 records"
cp -R "$dir" src
chmod -R u+w src
cd src
[ -f go.mod ] || go mod init "$module"
had_go=$(sed -n 's/^go[[:space:]]\\{1,\\}\\([0-9][0-9.]*\\).*/\\1/p' go.mod | head -n 1)
if [ -n "$requirements" ]; then go get $requirements; fi
if [ -z "$had_go" ]; then
  # go get writes a go line where there was none; the source keeps the language version it had (1.16), unless a requirement needs more.
  cp go.mod "$work/go.mod.got"
  go mod edit -go=1.16
  GOFLAGS=-mod=readonly go list -deps "$package" >/dev/null 2>&1 || cp "$work/go.mod.got" go.mod
fi
go build "$@" -o "$work/out" "$package"
go version -m "$work/out"
cat "$work/out" > "$dest"
echo "patchd: /$1 rebuilt with $GOTOOLCHAIN"
`;

const tasksScript = `#!/bin/sh
# patchd-go-tasks FILE: each line of FILE is one command, its arguments separated by tabs; run in order, all in this one step.
set -euf
tab=$(printf '\\t')
while IFS= read -r line; do
  [ -n "$line" ] || continue
  (IFS=$tab; set -- $line; "$@")
done < "$1"
`;

const field = /^[^\t\n\r\0]+$/;
const requirement = /^[A-Za-z0-9][A-Za-z0-9._~/-]*@v[0-9A-Za-z.+-]+$/;

function toolingEnv(env: GoEnvironment): string[] {
  if (!/^https?:\/\/[^\s@,|]+$/.test(env.proxy)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing GOPROXY ${JSON.stringify(env.proxy)}`);
  return [
    'PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'LC_ALL=C',
    // No go env file of the tooling's, no other proxy, no VCS: exactly the configured proxy (checksums through it from sum.golang.org).
    'GOENV=off', `GOPROXY=${env.proxy}`, 'GOFLAGS=-mod=mod', 'GONOSUMDB=', 'GOPRIVATE=', 'GOVCS=*:off',
    `GOMODCACHE=${cacheRoot}/mod`, `GOCACHE=${cacheRoot}/build`, `GOTOOLCHAIN=${env.modToolchain}`,
  ];
}

function modTask(u: GoModuleUpdate): string[] {
  if (!field.test(u.root) || u.requirements.length === 0) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing go.mod update in ${JSON.stringify(u.root)}`);
  for (const r of u.requirements) if (!requirement.test(r)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(r)} to go get`);
  return ['/usr/local/bin/patchd-go-mod-update', u.root, ...u.requirements];
}

function rebuildTask(b: GoRebuild): string[] {
  for (const r of b.requirements) if (!requirement.test(r)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing to pass ${JSON.stringify(r)} to go get`);
  for (const f of b.flags) if (!/^-[a-z]/.test(f) || !field.test(f)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing go build flag ${JSON.stringify(f)}`);
  for (const e of b.env) if (!/^(GO[A-Z0-9]*|CGO_[A-Z]+)=[^\t\n\r\0]*$/.test(e) || /^GO(FLAGS|PROXY|TOOLCHAIN|MODCACHE|CACHE|ENV|NOSUMDB|PRIVATE|VCS|PATH|ROOT)=/.test(e)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing build environment ${JSON.stringify(e)}`);
  if (!/^go1\.\d+(\.\d+)?((rc|beta)\d+)?$/.test(b.toolchain)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing toolchain ${JSON.stringify(b.toolchain)}`);
  const args = ['/usr/local/bin/patchd-go-rebuild', b.path, b.module, b.version, b.sum, b.package, b.toolchain, b.requirements.join(' ') || '-', String(b.env.length), ...b.env, ...b.flags];
  for (const a of args) if (!field.test(a)) throw new BuildkitError('BUILD_REQUEST_INVALID', `refusing rebuild argument ${JSON.stringify(a)} of /${b.path}`);
  return args;
}

/**
 * Every go.mod update, then every rebuild, in ONE exec of the tooling image
 * with the target mounted at /target: BuildKit exports the difference of a
 * chain of execs as one layer per exec, and the patch is one layer. The tasks
 * go in as a file of tab-separated argument lists (no shell parses them).
 */
export function goSteps(target: LlbState, tooling: LlbState, work: { updates: readonly GoModuleUpdate[]; rebuilds: readonly GoRebuild[] }, env: GoEnvironment): LlbState {
  const tasks = [...work.updates.map(modTask), ...work.rebuilds.map(rebuildTask)];
  if (tasks.length === 0) return target;
  const prepared = tooling
    .mkfile('/usr/local/bin/patchd-go-mod-update', 0o755, modUpdateScript, 'go.mod updater')
    .mkfile('/usr/local/bin/patchd-go-rebuild', 0o755, rebuildScript, 'Go binary rebuilder')
    .mkfile('/usr/local/bin/patchd-go-tasks', 0o755, tasksScript, 'Go task runner')
    .mkfile('/usr/local/share/patchd-go.tasks', 0o644, tasks.map((t) => `${t.join('\t')}\n`).join(''), 'Go tasks');
  const what = [
    ...work.updates.map((u) => `go get ${u.requirements.join(' ')} in /${u.root === '.' ? '' : u.root}`),
    ...work.rebuilds.map((b) => `rebuild /${b.path} from ${b.module}@${b.version}${b.requirements.length > 0 ? ` with ${b.requirements.join(' ')}` : ''} (${b.toolchain})`),
  ];
  const run = prepared.run({
    args: ['/usr/local/bin/patchd-go-tasks', '/usr/local/share/patchd-go.tasks'],
    env: toolingEnv(env), mounts: [{ kind: 'bind', dest: '/target', state: target }, goCache],
    name: what.join('; '),
  });
  return run.mountOutput('/target');
}

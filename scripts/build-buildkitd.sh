#!/usr/bin/env bash
# Builds buildkitd and buildctl (moby/buildkit, pinned) from the Go module
# proxy into $PATCHD_CACHE/bin and prints buildkitd's path. `go install ...@v0.32.2` refuses this
# module (its go.mod has exclude directives), so the same module source is
# downloaded and built as the main module, with the release version stamped in.
set -euo pipefail
version=v0.32.2
out="${PATCHD_CACHE:-$HOME/.cache/patchd}/bin/buildkitd-$version"
[ -x "$out" ] && [ -x "$(dirname "$out")/buildctl-$version" ] && { echo "$out"; exit 0; }
command -v go >/dev/null || { echo "build-buildkitd: go is required" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
[ -x "$out" ] && [ -x "$(dirname "$out")/buildctl-$version" ] && { echo "$out"; exit 0; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=auto GOFLAGS=-mod=mod GOPATH="${GOPATH:-$HOME/go}"
dir=$(cd "$work" && go mod download -json "github.com/moby/buildkit@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-buildkitd: could not download github.com/moby/buildkit@$version" >&2; exit 1; }
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
echo "build-buildkitd: building buildkitd $version (a few minutes on a fresh machine) ..." >&2
ldflags="-X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Revision=module-proxy"
# buildctl too: the tests decode patchd's LLB with it (`buildctl debug dump-llb`), an independent reader.
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$(dirname "$out")/buildctl-$version" ./cmd/buildctl \
  && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.partial" ./cmd/buildkitd) >&2
mv "$out.partial" "$out"
echo "$out"

#!/usr/bin/env bash
# Builds Copa (project-copacetic/copacetic, pinned) from the Go module proxy into
# $PATCHD_CACHE/bin and prints its path: the anchor bench/copa.bench.ts times
# patchd against. `go install ...@v0.14.2` is refused for this module, so (as
# scripts/build-buildkitd.sh does) its source is downloaded and built as the main
# module, with the release version stamped in (main.version, as Copa's Makefile
# does; its pkg/version stamps name a package v0.14.2 does not have).
set -euo pipefail
version=v0.14.2
mod=github.com/project-copacetic/copacetic
out="${PATCHD_CACHE:-$HOME/.cache/patchd}/bin/copa-$version"
[ -x "$out" ] && { echo "$out"; exit 0; }
command -v go >/dev/null || { echo "build-copa: go is required" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
[ -x "$out" ] && { echo "$out"; exit 0; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# GOWORK=off: a module's own go.work would name directories its zip leaves out.
export GOTOOLCHAIN=auto GOFLAGS=-mod=mod GOWORK=off GOPATH="${GOPATH:-$HOME/go}"
dir=$(cd "$work" && go mod download -json "$mod@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-copa: could not download $mod@$version" >&2; exit 1; }
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
# v0.14.2's go.mod has no local (./dir) replaces; refuse loudly if a bump brings one.
if grep -Eq '=>[[:space:]]*\.\.?/' "$work/src/go.mod"; then
  echo "build-copa: $mod@$version has local replaces; drop them as scripts/build-go-tools.sh does" >&2; exit 1
fi
echo "build-copa: building copa $version (minutes on a fresh machine) ..." >&2
ldflags="-s -w -X main.version=$version"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.partial" .) >&2
mv "$out.partial" "$out"
echo "$out"

#!/usr/bin/env bash
# Prints the bin directory of a Node.js on the supported LTS major (24), and
# installs one when the machine's node is older: the npm registry's
# `node-linux-<arch>` package carries the official Node.js binary (npm checks
# its integrity), unpacked into $PATCHD_CACHE/node-v<version>. Callers put the
# printed directory first on PATH, so node, npx and npm's scripts all run on it.
set -euo pipefail
major=24
version=24.22.3
if command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$major" ]; then
  dirname "$(command -v node)"
  exit 0
fi
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node-lts: no official Node.js $version binary for $(uname -m)" >&2; exit 1 ;;
esac
dir="${PATCHD_CACHE:-$HOME/.cache/patchd}/node-v$version-linux-$arch"
[ -x "$dir/bin/node" ] && { echo "$dir/bin"; exit 0; }
command -v npm >/dev/null || { echo "node-lts: npm is required to fetch Node.js $version" >&2; exit 1; }
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
[ -x "$dir/bin/node" ] && { echo "$dir/bin"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "node-lts: fetching node-linux-$arch@$version from the npm registry ..." >&2
tarball=$(cd "$work" && npm pack --silent "node-linux-$arch@$version" </dev/null | tail -n1)
mkdir "$work/unpacked"
tar -xzf "$work/$tarball" -C "$work/unpacked" --strip-components=1
"$work/unpacked/bin/node" --version >/dev/null
# npm and npx are not in that package: link the machine's npm into the same bin
# directory so `npm` found first on PATH runs on this node too.
npm_cli=$(npm root -g)/npm/bin/npm-cli.js
[ -f "$npm_cli" ] || npm_cli=$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js
[ -f "$npm_cli" ] || { echo "node-lts: could not find npm-cli.js of the machine's npm" >&2; exit 1; }
npx_cli=$(dirname "$npm_cli")/npx-cli.js
ln -s "$npm_cli" "$work/unpacked/bin/npm"
ln -s "$npx_cli" "$work/unpacked/bin/npx"
rm -rf "$dir"
mv "$work/unpacked" "$dir"
echo "$dir/bin"

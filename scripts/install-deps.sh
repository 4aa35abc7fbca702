#!/usr/bin/env bash
# Installs what patchd's tests and demo need on a fresh Debian bookworm
# machine, and nothing when it is all there already (safe to run every time).
#   system: docker-registry (local registry), skopeo, umoci (independent image
#           tools for the tests), debootstrap (the bookworm fixture),
#           apache2-utils (htpasswd for auth tests), xz-utils, zstd (zstd layers made
#           and read back independently of patchd), ca-certificates, openssl,
#           rpm + db5.3-util + createrepo-c + dnf (rpm databases and repositories
#           for the scanner and BuildKit tests), git, zip, curl,
#           python3 + pip, golang-go (when no Go toolchain is on PATH),
#           runc and buildkitd (built from the Go module proxy by
#           scripts/build-buildkitd.sh) for the BuildKit executor's tests
#   node:   Node.js 24 (scripts/node-lts.sh), npm ci (its `prepare` script compiles src/ to dist/), and dist/
#           rebuilt when src/ is newer, so `npx patchd` runs the current source.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(docker-registry skopeo umoci debootstrap apache2-utils xz-utils ca-certificates openssl rpm db5.3-util git runc createrepo-c dnf zip unzip curl zstd chromium redis-server)

missing=()
missing_lang=()
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
for pkg in "${apt_packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  if [ "${#sudo[@]}" -gt 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# The app-layer fixtures are built with the real tools: pip, npm, go.
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || missing_lang+=(python3 python3-pip)
command -v go >/dev/null || missing_lang+=(golang-go)
if [ "${#missing_lang[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing_lang[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing_lang[@]}" </dev/null
fi

# The BuildKit executor's tests run a real buildkitd (root, runc, overlayfs).
echo "install-deps: buildkitd: $(bash scripts/build-buildkitd.sh)"
echo "install-deps: go tools: kube-apiserver kubectl etcd helm gator kyverno"; bash scripts/build-go-tools.sh >/dev/null

# Node.js 24 (the supported LTS): the machine's when it is that new, else the
# official binary from the npm registry (scripts/node-lts.sh). Callers that run
# node afterwards put the same directory first on PATH.
export PATH="$(bash scripts/node-lts.sh):$PATH"
echo "install-deps: node $(node --version)"

# npm ci when node_modules is absent or older than the lockfile (npm keeps its
# own copy of the lockfile it installed from in node_modules/.package-lock.json).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci"
  npm ci --no-audit --no-fund </dev/null
  touch dist/.built
fi

# dist/ is what bin/patchd.js runs: rebuild it when any source or build setting is newer.
if [ ! -f dist/.built ] || [ -n "$(find src tsconfig.json tsconfig.build.json package-lock.json -newer dist/.built -print -quit)" ]; then
  echo "install-deps: building dist/ (tsc -p tsconfig.build.json)"
  npx --no-install tsc -p tsconfig.build.json
  touch dist/.built
fi

# `npx patchd` installs this package into npm's npx cache (a link back here)
# on first use. An earlier attempt whose build failed leaves that cache entry
# without its package.json, and npx then fails with ENOENT forever: drop such entries.
npx_cache="$(npm config get cache 2>/dev/null || echo "$HOME/.npm")/_npx"
if [ -d "$npx_cache" ]; then
  for entry in "$npx_cache"/*/; do
    [ -d "$entry" ] && [ ! -f "$entry/package.json" ] && { echo "install-deps: removing broken npx cache entry $entry"; rm -rf "$entry"; }
  done
fi

# Make that first `npx patchd` happen here, where a failure is plain to see,
# rather than inside a test's timeout. (Skipped while the CLI has no source.)
if [ -f src/main.ts ]; then
  if ! help=$(npx --yes patchd --help 2>&1 </dev/null); then
    echo "install-deps: \`npx patchd --help\` fails:" >&2
    echo "$help" >&2
    exit 1
  fi
fi
exit 0

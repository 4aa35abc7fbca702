#!/usr/bin/env bash
# Builds pinned Kubernetes and policy tools (and Toxiproxy, for fault tests) from the Go module proxy into
# $PATCHD_CACHE/bin/<name>-<version> and prints one line per tool: `name path`.
#   usage: bash scripts/build-go-tools.sh [tool ...]   (no tool: all of them)
# Each module's source is downloaded and built as the main module (as
# scripts/build-buildkitd.sh does), with its release version stamped in. A tool
# already built is only printed; one lock per tool lets tests call this at once.
set -euo pipefail

k8s_version=v1.37.2
etcd_version=v3.7.3
helm_version=v3.22.0
gatekeeper_version=v3.23.1
kyverno_version=v1.19.1
cosign_version=v3.1.3
toxiproxy_version=v2.5.0
all_tools=(kube-apiserver kubectl etcd helm gator kyverno cosign toxiproxy)

bin="${PATCHD_CACHE:-$HOME/.cache/patchd}/bin"

version_of() {
  case $1 in
    kube-apiserver|kubectl) echo "$k8s_version" ;;
    etcd) echo "$etcd_version" ;;
    helm) echo "$helm_version" ;;
    gator) echo "$gatekeeper_version" ;;
    kyverno) echo "$kyverno_version" ;;
    cosign) echo "$cosign_version" ;;
    toxiproxy) echo "$toxiproxy_version" ;;
    *) return 1 ;;
  esac
}

# Bumped when a tool's build changes, so a cached binary from the older build is not reused.
build_revision() {
  case $1 in
    helm) echo "-r2" ;;   # r2: Kubernetes version stamped
    *) echo "" ;;
  esac
}

log() { echo "build-go-tools: $*" >&2; }

# Copies MOD@VERSION's source from the module cache into $work/src (writable).
fetch_module() {
  local dir
  dir=$(cd "$work" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { log "could not download $1"; return 1; }
  cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
}

# A module zip leaves out its nested modules, so a `X => ./local/dir` replace
# points at nothing: drop each one and require X at its published version ($1).
drop_local_replaces() {
  local published=$1 mod args=()
  while read -r mod; do
    args+=("-dropreplace=$mod")
    if awk -v m="$mod" '!/=>/ && ($1 == m || ($1 == "require" && $2 == m)) { found = 1 } END { exit !found }' go.mod; then
      args+=("-require=$mod@$published")
    fi
  done < <(awk '/=>[ \t]*\.\.?\// { print ($1 == "replace" ? $2 : $1) }' go.mod)
  [ "${#args[@]}" -eq 0 ] || go mod edit "${args[@]}"
}

# Builds tool $1 at version $2 into $3 (run in $work).
build_tool() {
  local name=$1 version=$2 out=$3 ldflags pkg
  case $name in
    kube-apiserver|kubectl)
      fetch_module "k8s.io/kubernetes@$version"
      cd "$work/src"
      # go.work would point at the missing staging/ dirs too.
      rm -f go.work go.work.sum
      drop_local_replaces "v0.${version#v1.}"
      local minor=${version#v1.}; minor=${minor%%.*}
      ldflags=""
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
        ldflags+=" -X $p.gitCommit=module-proxy -X $p.gitTreeState=clean"
      done
      pkg=./cmd/$name
      ;;
    etcd)
      # etcd's own main module (go.etcd.io/etcd/v3) is not on the proxy at this
      # version; its main() only calls server/v3's etcdmain.Main, as this one does.
      mkdir "$work/src" && cd "$work/src"
      go mod init patchd.local/etcd >/dev/null 2>&1
      cat > main.go <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
      go mod edit -require="go.etcd.io/etcd/server/v3@$version"
      go mod tidy >&2
      ldflags="-X go.etcd.io/etcd/api/v3/version.GitSHA=module-proxy"
      pkg=.
      ;;
    helm)
      fetch_module "helm.sh/helm/v3@$version"
      cd "$work/src"
      ldflags="-X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitCommit=module-proxy -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      # As helm's Makefile does: the Kubernetes version `helm template` and `helm lint` assume is
      # client-go's (v0.N → 1.N); unstamped, helm assumes 1.20 and charts needing newer fail to render.
      local client_go k8s_minor
      client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)
      k8s_minor=$(echo "$client_go" | cut -d. -f2)
      for stamped in pkg/chartutil pkg/lint/rules; do
        ldflags="$ldflags -X helm.sh/helm/v3/$stamped.k8sVersionMajor=1 -X helm.sh/helm/v3/$stamped.k8sVersionMinor=$k8s_minor"
      done
      pkg=./cmd/helm
      ;;
    gator)
      fetch_module "github.com/open-policy-agent/gatekeeper/v3@$version"
      cd "$work/src"
      ldflags="-X github.com/open-policy-agent/gatekeeper/v3/pkg/version.Version=$version"
      pkg=./cmd/gator
      ;;
    kyverno)
      fetch_module "github.com/kyverno/kyverno@$version"
      cd "$work/src"
      ldflags="-X github.com/kyverno/kyverno/pkg/version.BuildVersion=$version"
      pkg=./cmd/cli/kubectl-kyverno
      ;;
    cosign)
      fetch_module "github.com/sigstore/cosign/v3@$version"
      cd "$work/src"
      ldflags="-X sigs.k8s.io/release-utils/version.gitVersion=$version -X sigs.k8s.io/release-utils/version.gitTreeState=clean"
      pkg=./cmd/cosign
      ;;
    toxiproxy)
      # The server only (its API is driven over HTTP by test/harness/toxiproxy.ts), stamped as its goreleaser does.
      fetch_module "github.com/Shopify/toxiproxy/v2@$version"
      cd "$work/src"
      ldflags="-X github.com/Shopify/toxiproxy/v2.Version=$version"
      pkg=./cmd/server
      ;;
  esac
  # -s -w as the projects' release builds do: no symbol tables, a third smaller.
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial" "$pkg" >&2
  mv "$out.partial" "$out"
}

tools=("$@")
[ "${#tools[@]}" -gt 0 ] || tools=("${all_tools[@]}")
for name in "${tools[@]}"; do
  version_of "$name" >/dev/null || { log "unknown tool '$name' (known: ${all_tools[*]})"; exit 2; }
done

mkdir -p "$bin"
for name in "${tools[@]}"; do
  version=$(version_of "$name")
  out="$bin/$name-$version$(build_revision "$name")"
  if [ ! -x "$out" ]; then
    command -v go >/dev/null || { log "go is required"; exit 1; }
    # A subshell per tool: its lock, temp dir and cd end with it.
    (
      exec 9>"$out.lock"
      flock 9
      [ -x "$out" ] && exit 0
      work=$(mktemp -d)
      trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
      # GOWORK=off: a module's own go.work names directories its zip leaves out.
      export GOTOOLCHAIN=auto GOFLAGS=-mod=mod GOWORK=off GOPATH="${GOPATH:-$HOME/go}"
      log "building $name $version (minutes on a fresh machine) ..."
      start=$SECONDS
      build_tool "$name" "$version" "$out"
      log "built $name $version in $((SECONDS - start)) s"
    )
  fi
  echo "$name $out"
done

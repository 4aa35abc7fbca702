#!/usr/bin/env bash
# `npm run demo`: patches a genuinely outdated Debian bookworm image end to end
# on this machine. Starts a throwaway local registry, pushes the fixture image
# to it, runs `npx patchd patch`, shows the patched image, stops the registry.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
rootfs=$(bash test/fixtures/build-bookworm.sh)

work=$(mktemp -d "${TMPDIR:-/tmp}/patchd-demo.XXXX")
registry_pid=""
# Keeps the script's own exit status: the registry dying of our SIGTERM is not a failure.
cleanup() {
  local status=$?
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

port=$(node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
registry="127.0.0.1:$port"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: $registry
YML
echo "== starting a local registry on $registry"
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "http://$registry/v2/" && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
  sleep 0.1
done

image="$registry/fixtures/bookworm:main"
echo "== pushing $rootfs as $image"
# The image is made by umoci and pushed by skopeo: none of patchd's code is involved.
umoci init --layout "$work/layout"
umoci new --image "$work/layout:main"
umoci raw add-layer --image "$work/layout:main" "$rootfs"
umoci config --image "$work/layout:main" --config.cmd bash \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:main" "docker://$image"

echo "== npx patchd patch -i $image"
npx --no-install patchd patch -i "$image"

echo "== skopeo inspect docker://$image-patched"
skopeo inspect --tls-verify=false "docker://$image-patched"
